"""Values passed between the edge stages. Frozen dataclasses; numpy arrays inside are not copied."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the full-size frame."""
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: "Box") -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    """One face as a detector found it: its box, a score, and landmarks when the backend has them.

    ``framing`` names the entry of ``edge.framing.FRAMINGS`` that maps this kind of box onto the
    face square FER-2013 was cropped to. ``landmarks`` are full-frame (x, y) pixels in BlazeFace's
    order: the eye on the image's left, the eye on the image's right, nose tip, mouth, and the two
    ear tragions; empty for backends without landmarks.
    """
    box: Box
    score: float
    framing: str
    landmarks: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Frame:
    """One captured image. ``image`` is BGR, BGRA or grayscale uint8 as the source gave it."""
    image: np.ndarray
    index: int                 # 0-based frame counter of this run
    source: str                # what the CSV 'source' column shows (device, file, image path)
    timestamp: datetime        # capture time, UTC
    still: bool = False        # a photo (image file, folder image, upload): a scene of its own, nothing carried over


@dataclass(frozen=True)
class Face:
    """One classified (and tracked, smoothed) face."""
    face_id: int
    box: Box
    probs: np.ndarray          # (num_labels,) float, sums to 1, in the contract's label order
    label: str
    confidence: float


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    faces: tuple[Face, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)   # per stage: decode, detect, classify, ...
    fps: float = 0.0           # the loop's frame rate when the sinks get this result (0 before it is known)
