"""Face detection backends behind one interface, chosen with ``edge.detector.backend``.

A detector has ``detect(image, thorough)`` (a full scan of a gray, BGR or BGRA uint8 frame; a
backend may leave its costliest part out when not ``thorough``, between thorough scans of video) and
``detect_near(image, boxes)`` (the cheap search near last frame's faces, between full scans); both
return ``Detection``s in full-frame pixels, largest first, at most ``max_faces``. Backends:

- ``haar`` (edge.detect.haar): OpenCV's frontal cascade, optionally with the profile cascade on the
  frame and its mirror for turned faces. No model file beyond what opencv-python ships.
- ``blazeface`` (edge.detect.blazeface): MediaPipe BlazeFace (full-range for full scans,
  short-range near known faces), with six landmarks, run with the same TFLite runtime as the
  classifier. Its two model files ship in fer_edge/edge/detect/models/ (Apache-2.0, MediaPipe).
"""
from __future__ import annotations

from fer_edge.edge.detect.base import Detector, DetectorError, clip_box, overlap_small, suppress_nested

BACKENDS = ("haar", "blazeface")


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
