"""One frame in, classified faces out: detect -> crop -> classify -> track -> smooth.

No OS code here (no files, signals, windows): the service loop and the web upload handler both
drive a Pipeline, each with its own instance (TFLite interpreters are not thread-safe).
"""
from __future__ import annotations

import time

import numpy as np

from common.config import resolve_path
from common.preprocess import to_gray
from edge.classify import EmotionClassifier
from edge.detect import FaceDetector
from edge.tracking import IouTracker, Smoother
from edge.types import Face, Frame, FrameResult


def checked_image(image: np.ndarray) -> np.ndarray:
    """The frame as the detector takes it: uint8 gray, BGR or BGRA, left in colour.

    Only the detector's downscaled copy and the face crops are turned gray (cheaper than converting
    every full frame). Raises ValueError for anything else; the caller counts a corrupt frame."""
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size
            and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)))):
        return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    return to_gray(image)          # converts other dtypes, or raises with the reason


def _face(face_id: int, box, probs: np.ndarray, labels: tuple[str, ...]) -> Face:
    k = int(np.argmax(probs))
    return Face(face_id=face_id, box=box, probs=probs, label=labels[k], confidence=float(probs[k]))


class Pipeline:
    """Detector + classifier + tracker + smoother."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier,
                 tracker: IouTracker | None = None, smoother: Smoother | None = None,
                 full_scan_every: int = 1):
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker if tracker is not None else IouTracker()
        self.smoother = smoother if smoother is not None else Smoother("none")
        self.full_scan_every = int(full_scan_every)
        self._last_boxes: list = []
        self._since_full = 0

    @classmethod
    def from_config(cls, cfg: dict) -> "Pipeline":
        """Build every stage from the full config (``cfg['edge']``); loads the model once."""
        e = cfg["edge"]
        return cls(FaceDetector.from_config(e["detector"]),
                   EmotionClassifier(resolve_path(e["model"]), threads=e["threads"], flip_tta=e["flip_tta"]),
                   IouTracker.from_config(e["tracking"]), Smoother.from_config(e["smoothing"]),
                   full_scan_every=e["detector"]["full_scan_every"])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def process(self, frame: Frame) -> FrameResult:
        """Classify every face of ``frame``, with stable face ids and smoothed probabilities.

        Raises ValueError (from to_gray) for an image that is not gray/BGR/BGRA; the caller
        counts it as a corrupt frame and goes on.
        """
        t0 = time.perf_counter()
        image = checked_image(frame.image)
        t1 = time.perf_counter()
        boxes = self._detect(image)
        t2 = time.perf_counter()
        probs = self.classifier.classify([self.detector.crop(image, b) for b in boxes]) if boxes else None
        t3 = time.perf_counter()
        ids = self.tracker.update(boxes)
        self.smoother.forget(self.tracker.dropped)
        faces = tuple(_face(fid, b, self.smoother.update(fid, p), self.labels)
                      for fid, b, p in zip(ids, boxes, probs if probs is not None else ()))
        t4 = time.perf_counter()
        return FrameResult(frame, faces, {"check": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3,
                                          "classify": (t3 - t2) * 1e3, "track": (t4 - t3) * 1e3})

    def _detect(self, image: np.ndarray) -> list:
        """Full scan every ``full_scan_every`` frames (and whenever a face was lost); in between, the
        much cheaper search near the last frame's faces."""
        self._since_full += 1
        if self._last_boxes and self._since_full < self.full_scan_every:
            boxes = self.detector.detect_near(image, self._last_boxes)
            if len(boxes) < len(self._last_boxes):
                self._since_full = self.full_scan_every      # someone left or moved fast: look everywhere next
        else:
            boxes = self.detector.detect(image)
            self._since_full = 0
        self._last_boxes = boxes
        return boxes

    def analyze_image(self, image: np.ndarray) -> list[Face]:
        """Stateless analysis of one photo (uploads): no tracking or smoothing, face_id = index."""
        image = checked_image(image)
        boxes = self.detector.detect(image)
        if not boxes:
            return []
        probs = self.classifier.classify([self.detector.crop(image, b) for b in boxes])
        return [_face(i, b, p, self.labels) for i, (b, p) in enumerate(zip(boxes, probs))]
