"""Face detection backends behind one interface, chosen with ``edge.detector.backend``.

Each backend is one module of this package that registers itself (``@register(name, schema)`` of
``base``) with its own config section, ``edge.detector.<name>``; importing this package imports every
module here, as Frigate's detector_types does. A detector has ``detect(image, thorough)`` (a full scan
of a gray, BGR or BGRA uint8 frame), ``scan(image)`` (a full scan of video: a backend may leave its
costliest part out of some) and ``detect_near(image, boxes)`` (the cheap search near last frame's
faces, between full scans); all return ``Detection``s in full-frame pixels, largest first, at most
``max_faces``. Backends:

- ``haar`` (edge.detect.haar): OpenCV's frontal cascade, optionally with the profile cascade on the
  frame and its mirror for turned faces. No model file beyond what opencv-python ships.
- ``blazeface`` (edge.detect.blazeface): MediaPipe BlazeFace (full-range for full scans,
  short-range near known faces), with six landmarks, run with the same TFLite runtime as the
  classifier. Its two model files ship in fer_edge/edge/detect/models/ (Apache-2.0, MediaPipe).
"""
from __future__ import annotations

import importlib
import pkgutil

from fer_edge.common.config import DetectorConfig, build, schema_of, validate
from fer_edge.edge.detect.base import (
    BACKENDS,
    Detector,
    DetectorError,
    clip_box,
    overlap_small,
    register,
    suppress_nested,
)


def load_plugins() -> None:
    """Import every backend module of this package: each registers itself and its config section."""
    for mod in pkgutil.iter_modules(__path__, f"{__name__}."):
        if mod.name != f"{__name__}.base":
            importlib.import_module(mod.name)


def make_detector(det: DetectorConfig, threads: int = 1) -> Detector:
    """The backend named by ``edge.detector.backend``, built from that config section and its own.

    Raises DetectorError naming the file or package and the command that fixes it."""
    name = det.backend
    if name not in BACKENDS:
        raise DetectorError(f"config key 'edge.detector.backend': {name!r} is not one of {', '.join(BACKENDS)}")
    backend, own = BACKENDS[name], det.own
    if not isinstance(own, backend.section):      # a config read before the backend registered
        where = f"edge.detector.{name}"
        own = build(backend.section, validate(own, schema_of(backend.section), where), where)
    return backend.build(det, own, threads)


load_plugins()

__all__ = ["BACKENDS", "Detector", "DetectorError", "load_plugins", "make_detector", "register",
           "suppress_nested", "overlap_small", "clip_box"]
