"""Per-face identity across frames (greedy box IoU) and temporal smoothing of probabilities.

Without these, a label flips between 'neutral' and 'sad' from one frame to the next and the CSV
cannot tell two people apart. Both are plain state machines with no OpenCV or model code.
"""
from __future__ import annotations

from collections import deque
from typing import cast

import numpy as np

from fer_edge.common.config import SmoothingConfig, TrackingConfig
from fer_edge.edge.types import Box


class IouTracker:
    """Give each box a face_id that stays stable while the face keeps overlapping its last box."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10):
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self._tracks: dict[int, tuple[Box, int]] = {}     # face_id -> (last box, frames missed)
        self._next_id = 0
        self.dropped: list[int] = []                       # ids dropped by the last update

    @classmethod
    def from_config(cls, cfg: TrackingConfig) -> "IouTracker":
        """From the ``edge.tracking`` section."""
        return cls(cfg.iou_threshold, cfg.max_missed)

    def update(self, boxes: list[Box]) -> list[int]:
        """face_id for each of ``boxes`` (same order). Unmatched boxes get new ids."""
        pairs = sorted(((b.iou(tb), i, fid) for i, b in enumerate(boxes) for fid, (tb, _) in self._tracks.items()),
                       reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for iou, i, fid in pairs:
            # Greedy by best overlap: with a handful of faces this equals the optimal assignment in practice.
            if iou < self.iou_threshold or iou <= 0.0:
                break
            if ids[i] is None and fid not in used:
                ids[i] = fid
                used.add(fid)
        self.dropped = []
        for fid, (tb, missed) in list(self._tracks.items()):
            if fid not in used:
                if missed + 1 > self.max_missed:
                    del self._tracks[fid]
                    self.dropped.append(fid)
                else:
                    self._tracks[fid] = (tb, missed + 1)
        for i, b in enumerate(boxes):
            face_id = ids[i]
            if face_id is None:
                face_id = ids[i] = self._next_id
                self._next_id += 1
            self._tracks[face_id] = (b, 0)
        return ids  # type: ignore[return-value]


class Smoother:
    """Per-face temporal smoothing of probabilities, and a label that does not flicker.

    Methods: 'none'; 'ema' (exponential moving average of the probabilities, ``alpha`` = weight of
    the newest frame); 'logema' (the same on log-probabilities, i.e. a running geometric mean: one
    confident frame cannot outvote several that disagree, and a real change still wins in a few
    frames); 'window' (mean of the last ``window`` frames). The label then moves with hysteresis: it
    changes only when another class's smoothed probability beats the current label's by more than
    ``hysteresis``, so two classes running neck and neck do not swap the label every frame.
    """

    METHODS = ("none", "ema", "logema", "window")
    FLOOR = 1e-4                      # log of an int8 softmax 0 would be -inf: floor the probabilities

    def __init__(self, method: str = "ema", alpha: float = 0.5, window: int = 5, hysteresis: float = 0.0):
        if method not in self.METHODS:
            raise ValueError(f"smoothing method {method!r} is not one of {', '.join(self.METHODS)}")
        self.method, self.alpha, self.window = method, float(alpha), int(window)
        self.hysteresis = float(hysteresis)
        self._state: dict[int, np.ndarray | deque[np.ndarray]] = {}
        self._label: dict[int, int] = {}

    @classmethod
    def from_config(cls, cfg: SmoothingConfig) -> "Smoother":
        """From the ``edge.smoothing`` section."""
        return cls(cfg.method, cfg.alpha, cfg.window, cfg.hysteresis)

    def _smooth(self, face_id: int, probs: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return probs
        if self.method == "window":
            hist = cast("deque[np.ndarray]", self._state.setdefault(face_id, deque(maxlen=self.window)))
            hist.append(probs)
            mean: np.ndarray = np.mean(hist, axis=0)
            return mean
        x = np.log(np.maximum(probs, self.FLOOR)) if self.method == "logema" else probs
        prev = cast("np.ndarray | None", self._state.get(face_id))
        cur = x if prev is None else self.alpha * x + (1.0 - self.alpha) * prev
        self._state[face_id] = cur
        if self.method == "ema":
            return cur
        e = np.exp(cur - cur.max())
        out: np.ndarray = (e / e.sum()).astype(np.float32)
        return out

    def update(self, face_id: int, probs: np.ndarray) -> tuple[np.ndarray, int]:
        """``face_id``'s smoothed probabilities after this frame's ``probs`` (they sum to 1) and
        the index of its label."""
        p = self._smooth(face_id, probs)
        best = int(np.argmax(p))
        cur = self._label.get(face_id)
        if cur is None or cur == best or p[best] - p[cur] > self.hysteresis:
            cur = best
        self._label[face_id] = cur
        return p, cur

    def forget(self, face_ids: list[int]) -> None:
        """Drop the state of faces the tracker has given up on."""
        for fid in face_ids:
            self._state.pop(fid, None)
            self._label.pop(fid, None)
