"""What every detector backend shares: the interface, the start-up error, and box helpers."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from fer_edge.edge.types import Box, Detection


class DetectorError(ValueError):
    """A detector cannot be built (missing package, missing or altered model file); raised at start."""


class Detector(Protocol):
    backend: str
    max_faces: int

    def detect(self, image: np.ndarray, thorough: bool = True) -> list[Detection]: ...
    def detect_near(self, image: np.ndarray, near: list[Box]) -> list[Detection]: ...


def overlap_small(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area (1.0 when one box lies inside the other)."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    small = min(a.area, b.area)
    return ix * iy / small if small > 0 else 0.0


def suppress_nested(dets: list[Detection], limit: int, max_overlap: float = 0.6) -> list[Detection]:
    """Keep detections in the given order of preference, without those that mostly lie inside one
    already kept; then the largest ``limit`` of them, largest first.

    Haar's neighbour grouping leaves a smaller duplicate inside a face now and then, and the frontal
    and profile cascades find the same half-turned face twice; logging it as a second person would be
    wrong."""
    keep: list[Detection] = []
    for d in dets:
        if all(overlap_small(d.box, k.box) < max_overlap for k in keep):
            keep.append(d)
    return sorted(keep, key=lambda d: d.box.area, reverse=True)[:limit]


def clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Box | None:
    """Round and clip a float box to the frame; None when nothing of it is left."""
    bx0, by0 = max(0, int(round(x0))), max(0, int(round(y0)))
    bx1, by1 = min(w, int(round(x1))), min(h, int(round(y1)))
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return None
    return Box(bx0, by0, bx1 - bx0, by1 - by0)
