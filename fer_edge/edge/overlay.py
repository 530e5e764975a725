"""Draw results on a frame: a box with label + confidence per face, per-class bars for the largest
face, and the FPS. Works on a copy, so the frame stays untouched for the web view. ``Window``: the
sink that shows each frame so drawn."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from fer_edge.common.preprocess import to_gray
from fer_edge.edge.types import FrameResult

WINDOW = "fer-edge"
BOX_COLOR = (0, 220, 0)      # BGR
BAR_COLOR = (0, 160, 255)
TEXT_COLOR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image.copy()
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    # Dark outline under light text stays readable on any background.
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)


def draw(image: np.ndarray, result: FrameResult, labels: tuple[str, ...], fps: float | None = None) -> np.ndarray:
    """An annotated BGR copy of ``image``."""
    out = _bgr(image)
    h, w = out.shape[:2]
    scale = max(0.7, min(1.4, w / 640.0))     # readable on a 320-px frame, not huge on 1080p
    for face in result.faces:
        b = face.box
        cv2.rectangle(out, (b.x, b.y), (b.x + b.w - 1, b.y + b.h - 1), BOX_COLOR, 2)
        ty = b.y - 6 if b.y > 20 else min(h - 4, b.y + b.h + 16)
        _text(out, f"#{face.face_id} {face.label} {face.confidence:.0%}", (b.x, ty), scale * 0.7)
    if result.faces:
        largest = max(result.faces, key=lambda f: f.box.area)
        row = int(16 * scale) + 4
        bar_w = int(90 * scale)
        x0, y0 = 6, h - row * len(labels) - 4
        for i, (name, p) in enumerate(zip(labels, largest.probs)):
            y = y0 + i * row
            cv2.rectangle(out, (x0, y), (x0 + int(bar_w * float(p)), y + row - 3), BAR_COLOR, -1)
            _text(out, f"{name} {float(p):.2f}", (x0 + bar_w + 4, y + row - 5), scale * 0.45)
    if fps is not None:
        _text(out, f"{fps:.1f} FPS", (6, int(22 * scale) + 4), scale * 0.6)
    return out


class Window:
    """The overlay window, a sink: each frame with its faces, labels and bars; q, Esc or closing the
    window sets ``stop`` (the run ends after this frame)."""

    name = "window"

    def __init__(self, labels: tuple[str, ...], stop: threading.Event):
        self.labels, self.stop = labels, stop

    def write(self, result: FrameResult) -> None:
        cv2.imshow(WINDOW, draw(result.frame.image, result, self.labels, result.fps))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            self.stop.set()

    def close(self) -> None:
        cv2.destroyAllWindows()

    def counters(self) -> dict[str, int]:
        return {}
