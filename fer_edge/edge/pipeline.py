"""One frame in, classified faces out: detect -> crop -> classify -> track -> smooth.

Video (files, cameras, streams) is tracked and smoothed; a photo (``Frame.still``: an image file,
each image of a folder, an upload) is a scene of its own: a full detection, no tracking, no
smoothing, nothing carried over from the frame before, face_id = the face's index in the photo.
No OS code here (no files, signals, windows): the service loop and the web upload handler both
drive a Pipeline, each with its own instance (TFLite interpreters are not thread-safe).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from fer_edge.common.config import Config, resolve_path
from fer_edge.common.preprocess import to_gray
from fer_edge.edge.detect import Detector, make_detector
from fer_edge.edge.face_classifier import EmotionClassifier
from fer_edge.edge.framing import crop_face
from fer_edge.edge.tracking import IouTracker, Smoother
from fer_edge.edge.types import Box, Detection, Face, Frame, FrameResult


def checked_image(image: np.ndarray) -> np.ndarray:
    """The frame as the detector takes it: uint8 gray, BGR or BGRA, left in colour.

    Only the detector's downscaled copy and the face crops are turned gray (cheaper than converting
    every full frame). Raises ValueError for anything else; the caller counts a corrupt frame."""
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size
            and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)))):
        return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    return to_gray(image)          # converts other dtypes, or raises with the reason


def _face(face_id: int, box: Box, probs: np.ndarray, k: int | None = None, *, labels: tuple[str, ...]) -> Face:
    k = int(np.argmax(probs)) if k is None else k
    return Face(face_id=face_id, box=box, probs=probs, label=labels[k], confidence=float(probs[k]))


class Pipeline:
    """Detector + classifier + tracker + smoother."""

    def __init__(self, detector: Detector, classifier: EmotionClassifier,
                 tracker: IouTracker | None = None, smoother: Smoother | None = None,
                 full_scan_every: int = 1, margin: float = 0.0, flip_stills: bool = False):
        self.detector = detector
        self.margin = float(margin)
        self.flip_stills = bool(flip_stills)          # photos: mirror averaging even when video goes without
        self.classifier = classifier
        self.tracker = tracker if tracker is not None else IouTracker()
        self.smoother = smoother if smoother is not None else Smoother("none")
        self.full_scan_every = int(full_scan_every)
        self._last_boxes: list[Box] = []
        self._since_full = 0

    @classmethod
    def from_config(cls, cfg: Config) -> "Pipeline":
        """Build every stage from the full config (``cfg.edge``); loads the model once."""
        e, d = cfg.edge, cfg.edge.detector
        return cls(make_detector(d, threads=e.threads),
                   EmotionClassifier(resolve_path(e.model), threads=e.threads, flip_tta=e.flip_tta is True),
                   IouTracker.from_config(e.tracking), Smoother.from_config(e.smoothing),
                   full_scan_every=d.full_scan_every, margin=d.margin, flip_stills=e.flip_tta in (True, "auto"))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def process(self, frame: Frame) -> FrameResult:
        """Classify every face of ``frame``: tracked and smoothed for video, independently for a still.

        Raises ValueError (from to_gray) for an image that is not gray/BGR/BGRA; the caller
        counts it as a corrupt frame and goes on.
        """
        t0 = time.perf_counter()
        image = checked_image(frame.image)
        t1 = time.perf_counter()
        dets = self.detector.detect(image) if frame.still else self._detect(image)
        t2 = time.perf_counter()
        probs = self._classify(image, dets, frame.still)
        t3 = time.perf_counter()
        if frame.still:
            faces = tuple(_face(i, d.box, p, labels=self.labels) for i, (d, p) in enumerate(zip(dets, probs)))
        else:
            ids = self.tracker.update([d.box for d in dets])
            self.smoother.forget(self.tracker.dropped)
            faces = tuple(_face(fid, d.box, *self.smoother.update(fid, p), labels=self.labels)
                          for fid, d, p in zip(ids, dets, probs))
        t4 = time.perf_counter()
        return FrameResult(frame, faces, {"check": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3,
                                          "classify": (t3 - t2) * 1e3, "track": (t4 - t3) * 1e3})

    def crop(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """The FER-framed face crop of ``det`` with this pipeline's margin."""
        return crop_face(image, det, self.margin)

    def _classify(self, image: np.ndarray, dets: list[Detection], still: bool) -> np.ndarray:
        return self.classifier.classify([self.crop(image, d) for d in dets], flip=True if still and self.flip_stills else None)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Full scan every ``full_scan_every`` frames (and whenever a face was lost; the detector decides
        which of them are thorough); in between, the much cheaper search near the last frame's faces."""
        self._since_full += 1
        if self._last_boxes and self._since_full < self.full_scan_every:
            dets = self.detector.detect_near(image, self._last_boxes)
            if len(dets) < len(self._last_boxes):
                self._since_full = self.full_scan_every      # someone left or moved fast: look everywhere next
        else:
            dets = self.detector.scan(image)
            self._since_full = 0
        self._last_boxes = [d.box for d in dets]
        return dets

    def analyze_image(self, image: np.ndarray) -> list[Face]:
        """One photo on its own (uploads): a full detection, no tracking or smoothing, face_id = index."""
        return list(self.process(Frame(image, 0, "", datetime.now(timezone.utc), still=True)).faces)
