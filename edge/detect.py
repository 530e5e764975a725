"""Face detection with OpenCV's Haar frontal-face cascade (opencv-python < 5 ships it in cv2.data).

Detect small, draw big: the cascade runs on a copy downscaled to ``detect_width`` and the boxes are
mapped back to full-frame pixels, so the cost of detection does not grow with the camera size.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.preprocess import to_gray
from edge.types import Box

CASCADE_NAME = "haarcascade_frontalface_default.xml"
# detect_near: search a window this much larger than the face on each side, scaled so the face
# is about ROI_FACE_PX wide (the cascade's own window is 24 px), for faces 0.6x..1.6x as big.
ROI_PAD = 0.5
ROI_FACE_PX = 32
ROI_SIZE_RANGE = (0.6, 1.6)
# The neighbourhood is tiny, so a fine pyramid step costs little and keeps Haar's neighbour votes
# (minNeighbors) high enough not to lose a face from one frame to the next.
ROI_SCALE_FACTOR = 1.1


def _overlap_small(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area (1.0 when one box lies inside the other)."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    small = min(a.area, b.area)
    return ix * iy / small if small > 0 else 0.0


def suppress_nested(boxes: list[Box], limit: int) -> list[Box]:
    """Largest first, without boxes that mostly lie inside a bigger one.

    Haar's neighbour grouping leaves a smaller duplicate inside a face now and then; logging it as
    a second person would be wrong.
    """
    keep: list[Box] = []
    for b in sorted(boxes, key=lambda b: b.area, reverse=True):
        if all(_overlap_small(b, k) < 0.6 for k in keep):
            keep.append(b)
    return keep[:limit]


class DetectorError(ValueError):
    """The cascade cannot be loaded; raised at start, never inside the loop."""


def default_cascade_path() -> Path:
    """Where opencv-python keeps the frontal-face cascade."""
    data = getattr(cv2, "data", None)
    if data is None or not getattr(data, "haarcascades", None):
        raise DetectorError("this OpenCV build has no cv2.data.haarcascades (OpenCV 5 dropped the Haar "
                            "cascades): install the edge requirements, `pip install 'opencv-python<5'`.")
    return Path(data.haarcascades) / CASCADE_NAME


class FaceDetector:
    """Haar cascade face detector; ``detect`` returns full-frame boxes, largest first."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 40,
                 max_faces: int = 5, detect_width: int = 320, margin: float = 0.1,
                 cascade_path: str | Path | None = None):
        path = Path(cascade_path) if cascade_path is not None else default_cascade_path()
        if not path.is_file() or path.stat().st_size == 0:
            raise DetectorError(f"Haar cascade {path} is missing or empty: reinstall opencv-python "
                                "(`pip install --force-reinstall 'opencv-python<5'`).")
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorError(f"Haar cascade {path} could not be loaded (not a cascade XML): "
                                "reinstall opencv-python (`pip install --force-reinstall 'opencv-python<5'`).")
        self.cascade_path = path
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_faces = int(max_faces)
        self.detect_width = int(detect_width)
        self.margin = float(margin)

    @classmethod
    def from_config(cls, det_cfg: dict) -> "FaceDetector":
        """Build from the ``edge.detector`` section of config.yaml."""
        return cls(scale_factor=det_cfg["scale_factor"], min_neighbors=det_cfg["min_neighbors"],
                   min_size=det_cfg["min_size"], max_faces=det_cfg["max_faces"],
                   detect_width=det_cfg["detect_width"], margin=det_cfg["margin"])

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a gray, BGR or BGRA uint8 image as full-frame boxes, largest first, at most
        ``max_faces``. Colour is dropped after downscaling: converting the small copy is cheaper."""
        h, w = image.shape[:2]
        scale = 1.0
        small = image
        if 0 < self.detect_width < w:
            scale = self.detect_width / w
            small = cv2.resize(image, (self.detect_width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        small = to_gray(small)
        # min_size is in full-frame pixels; the cascade needs it in pixels of the small copy
        # (never below the cascade's own 24 px window, which it cannot go under anyway).
        ms = max(24, round(self.min_size * scale))
        if min(small.shape[:2]) < ms:
            return []
        found = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(ms, ms))
        boxes = []
        inv = 1.0 / scale
        for (x, y, bw, bh) in (found if len(found) else ()):
            bx, by = int(round(x * inv)), int(round(y * inv))
            boxes.append(Box(bx, by, min(int(round(bw * inv)), w - bx), min(int(round(bh * inv)), h - by)))
        return suppress_nested(boxes, self.max_faces)

    def detect_near(self, image: np.ndarray, near: list[Box]) -> list[Box]:
        """Faces close to ``near`` (last frame's boxes): the cheap per-frame search between full scans.

        Each box's neighbourhood is searched at a scale that makes the face small and for sizes close
        to the old one, which costs a fraction of a full-frame scan. Faces that moved in from
        elsewhere are found by the next full ``detect``.
        """
        h, w = image.shape[:2]
        found: list[Box] = []
        for b in near:
            side = max(b.w, b.h)
            pad = side * ROI_PAD
            x0, y0 = max(0, int(b.x - pad)), max(0, int(b.y - pad))
            x1, y1 = min(w, int(b.x + b.w + pad)), min(h, int(b.y + b.h + pad))
            if x1 - x0 < 24 or y1 - y0 < 24:
                continue
            s = min(1.0, ROI_FACE_PX / side)
            roi = to_gray(image[y0:y1, x0:x1])       # gray first: resizing one channel is 3x cheaper
            small = roi if s == 1.0 else cv2.resize(roi, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                                                     interpolation=cv2.INTER_AREA)
            lo = max(24, int(side * s * ROI_SIZE_RANGE[0]))
            hi = max(lo + 1, int(side * s * ROI_SIZE_RANGE[1]))
            if min(small.shape[:2]) < lo:
                continue
            hits = self.cascade.detectMultiScale(small, scaleFactor=min(self.scale_factor, ROI_SCALE_FACTOR),
                                                 minNeighbors=self.min_neighbors,
                                                 minSize=(lo, lo), maxSize=(hi, hi))
            for (x, y, bw, bh) in (hits if len(hits) else ()):
                nb = Box(x0 + int(round(x / s)), y0 + int(round(y / s)), int(round(bw / s)), int(round(bh / s)))
                nb = Box(nb.x, nb.y, min(nb.w, w - nb.x), min(nb.h, h - nb.y))
                if max(nb.w, nb.h) >= self.min_size:
                    found.append(nb)
        # Neighbourhoods of two close faces overlap: keep one box per face.
        return suppress_nested(found, self.max_faces)

    def crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The face square around ``box``, enlarged by ``margin``, clipped to the image, in gray."""
        h, w = image.shape[:2]
        side = max(box.w, box.h) * (1.0 + self.margin)
        cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
        x0 = max(0, int(round(cx - side / 2)))
        y0 = max(0, int(round(cy - side / 2)))
        x1 = min(w, int(round(cx + side / 2)))
        y1 = min(h, int(round(cy + side / 2)))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {box} lies outside the {w}x{h} frame")
        return to_gray(image[y0:y1, x0:x1])
