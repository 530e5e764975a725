"""The ``haar`` backend: OpenCV's frontal-face cascade, plus (``edge.detector.haar.profile``) the profile
cascade on the frame and on its mirror image, which finds half-turned faces the frontal one misses.

Detect small, draw big: the cascades run on a gray copy downscaled to ``detect_width`` and the
boxes are mapped back to full-frame pixels, so the cost does not grow with the camera size.
opencv-python < 5 ships both cascade files in cv2.data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_edge.common.config import DetectorConfig, Section, setting
from fer_edge.common.preprocess import to_gray
from fer_edge.edge.detect.base import DetectorError, register, suppress_nested
from fer_edge.edge.types import Box, Detection

FRONTAL = "haarcascade_frontalface_default.xml"
PROFILE = "haarcascade_profileface.xml"
# detect_near: search a window this much larger than the face on each side, scaled so the face
# is about ROI_FACE_PX wide (the cascade's own window is 24 px), for faces 0.6x..1.6x as big.
ROI_PAD = 0.5
ROI_FACE_PX = 32
ROI_SIZE_RANGE = (0.6, 1.6)
# The neighbourhood is tiny, so a fine pyramid step costs little and keeps Haar's neighbour votes
# (minNeighbors) high enough not to lose a face from one frame to the next.
ROI_SCALE_FACTOR = 1.1


def opencv_cascade(name: str) -> Path:
    """Where opencv-python keeps the cascade ``name``."""
    data = getattr(cv2, "data", None)
    if data is None or not getattr(data, "haarcascades", None):
        raise DetectorError("this OpenCV build has no cv2.data.haarcascades (OpenCV 5 dropped the Haar "
                            "cascades): install the edge requirements, `pip install 'opencv-python<5'`.")
    return Path(data.haarcascades) / name


def load_cascade(path: Path) -> cv2.CascadeClassifier:
    if not path.is_file() or path.stat().st_size == 0:
        raise DetectorError(f"Haar cascade {path} is missing or empty: reinstall opencv-python "
                            "(`pip install --force-reinstall 'opencv-python<5'`).")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise DetectorError(f"Haar cascade {path} could not be loaded (not a cascade XML): "
                            "reinstall opencv-python (`pip install --force-reinstall 'opencv-python<5'`).")
    return cascade


@dataclass(frozen=True)
class HaarConfig(Section):
    """edge.detector.haar"""
    profile: bool = setting(bool, True)
    scale_factor: float = setting(float, 1.2, min=1.01, max=2.0)
    min_neighbors: int = setting(int, 5, min=0, max=100)
    profile_every: int = setting(int, 3, min=1, max=10000)


@register("haar", HaarConfig)
class HaarDetector:
    """Haar cascade face detector; ``detect`` returns full-frame detections, largest first."""

    backend = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 40,
                 max_faces: int = 5, detect_width: int = 320, profile: bool = False,
                 cascade_path: str | Path | None = None, profile_path: str | Path | None = None,
                 profile_every: int = 1):
        self.cascade_path = Path(cascade_path) if cascade_path is not None else opencv_cascade(FRONTAL)
        self.cascade = load_cascade(self.cascade_path)
        self.profile = None
        if profile:
            path = Path(profile_path) if profile_path is not None else opencv_cascade(PROFILE)
            self.profile = load_cascade(path)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_faces = int(max_faces)
        self.detect_width = int(detect_width)
        self.profile_every = int(profile_every)
        self._scans = 0

    @classmethod
    def from_config(cls, det: DetectorConfig, own: HaarConfig, threads: int = 1) -> "HaarDetector":
        """Build from config.yaml's ``edge.detector`` section and its ``haar`` section (``own``)."""
        return cls(scale_factor=own.scale_factor, min_neighbors=own.min_neighbors, min_size=det.min_size,
                   max_faces=det.max_faces, detect_width=det.detect_width, profile=own.profile,
                   profile_every=own.profile_every)

    def describe(self) -> str:
        return self.backend + ("+profile" if self.profile is not None else "")

    def scan(self, image: np.ndarray) -> list[Detection]:
        """A full scan of the next video frame, with the profile cascades on every ``profile_every``-th."""
        thorough = self._scans % self.profile_every == 0
        self._scans += 1
        return self.detect(image, thorough=thorough)

    def _scan(self, small: np.ndarray, min_px: int, max_px: int = 0, scale_factor: float | None = None,
              profile: bool = True, profile_if_none: bool = False) -> list[tuple[tuple[int, ...], str]]:
        """The cascades over one gray image: (x, y, w, h) in its pixels, with the framing name. The
        profile cascade runs always, or with ``profile_if_none`` only when the frontal one found nothing."""
        kw: dict[str, Any] = {"scaleFactor": scale_factor or self.scale_factor, "minNeighbors": self.min_neighbors,
                              "minSize": (min_px, min_px)}
        if max_px:
            kw["maxSize"] = (max_px, max_px)
        out = [(tuple(r), "haar") for r in self.cascade.detectMultiScale(small, **kw)]
        if self.profile is not None and profile and not (profile_if_none and out):
            iw = small.shape[1]
            out += [(tuple(r), "haar_profile") for r in self.profile.detectMultiScale(small, **kw)]
            for (x, y, bw, bh) in self.profile.detectMultiScale(np.ascontiguousarray(small[:, ::-1]), **kw):
                out.append(((iw - x - bw, y, bw, bh), "haar_profile_mirrored"))
        return out

    def detect(self, image: np.ndarray, thorough: bool = True) -> list[Detection]:
        """Faces in a gray, BGR or BGRA uint8 image, largest first, at most ``max_faces``. Colour is
        dropped after downscaling: converting the small copy is cheaper. Without ``thorough`` the
        profile cascades are left out (video spreads their cost over several full scans)."""
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
        inv = 1.0 / scale
        dets = []
        for (x, y, bw, bh), framing in self._scan(small, ms, profile=thorough):
            bx, by = int(round(x * inv)), int(round(y * inv))
            box = Box(bx, by, min(int(round(bw * inv)), w - bx), min(int(round(bh * inv)), h - by))
            dets.append(Detection(box, 1.0, framing))
        return suppress_nested(dets, self.max_faces)      # frontal boxes first: preferred over profile ones

    def detect_near(self, image: np.ndarray, near: list[Box]) -> list[Detection]:
        """Faces close to ``near`` (last frame's boxes): the cheap per-frame search between full scans.

        Each box's neighbourhood is searched at a scale that makes the face small and for sizes close
        to the old one, which costs a fraction of a full-frame scan. Faces that moved in from
        elsewhere are found by the next full ``detect``.
        """
        h, w = image.shape[:2]
        found: list[Detection] = []
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
            # A face seen frontally last frame most likely still is: the profile cascades only when
            # the frontal one lost it (they cost twice as much again).
            for (x, y, bw, bh), framing in self._scan(small, lo, hi, min(self.scale_factor, ROI_SCALE_FACTOR),
                                                      profile_if_none=True):
                nb = Box(x0 + int(round(x / s)), y0 + int(round(y / s)), int(round(bw / s)), int(round(bh / s)))
                nb = Box(nb.x, nb.y, min(nb.w, w - nb.x), min(nb.h, h - nb.y))
                if max(nb.w, nb.h) >= self.min_size:
                    found.append(Detection(nb, 1.0, framing))
        # Neighbourhoods of two close faces overlap: keep one box per face.
        return suppress_nested(found, self.max_faces)
