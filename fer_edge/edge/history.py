"""Emotion history for the web view: per-second counts of each emotion over the last minutes or hours.

A fixed ring of ``seconds`` slots, one per wall-clock second, each holding the face rows per emotion
and the frames processed in that second; a slot is reset when the ring comes round to it. Memory is
``seconds x (labels + 1) x 4`` bytes whatever the uptime (6 h with 7 emotions: 700 KB). ``add`` is a
handful of array writes per frame, called from the loop under RecentResults' lock.
"""
from __future__ import annotations

import math
import time

import numpy as np


class EmotionHistory:
    def __init__(self, labels: tuple[str, ...], seconds: int):
        self.labels = tuple(labels)
        self.index = {name: i for i, name in enumerate(self.labels)}
        self.size = int(seconds)
        self.counts = np.zeros((self.size, len(self.labels) + 1), np.int32)   # last column: frames
        self.stamp = np.full(self.size, -1, np.int64)                          # the second each slot holds

    def add(self, t: float, labels) -> None:
        """One processed frame at unix time ``t`` with its faces' labels."""
        s = int(t)
        i = s % self.size
        row = self.counts[i]
        if self.stamp[i] != s:
            self.stamp[i] = s
            row[:] = 0
        row[-1] += 1
        for label in labels:
            row[self.index[label]] += 1

    def copy(self) -> "EmotionHistory":
        """A copy of the counts (two array copies, well under a millisecond for 6 h): taken under the
        loop's lock so that ``series`` can be computed from it outside, without holding the loop."""
        other = EmotionHistory.__new__(EmotionHistory)
        other.labels, other.index, other.size = self.labels, self.index, self.size
        other.counts, other.stamp = self.counts.copy(), self.stamp.copy()
        return other

    def series(self, seconds: int, now: float | None = None, points: int = 240) -> dict:
        """The last ``seconds`` in at most ``points`` bins: per bin the face rows per emotion and the
        frames; ``frames`` 0 means the loop processed nothing then (stopped, or before its start)."""
        now = int(time.time() if now is None else now)
        seconds = max(1, min(int(seconds), self.size))
        step = max(1, math.ceil(seconds / points))
        bins = math.ceil(seconds / step)
        first = now - bins * step + 1
        out = np.zeros((bins, len(self.labels) + 1), np.int64)
        valid = (self.stamp >= first) & (self.stamp <= now)
        if valid.any():
            which = (self.stamp[valid] - first) // step
            np.add.at(out, which, self.counts[valid])
        return {"labels": list(self.labels), "step_s": step, "start_unix": first, "end_unix": now + 1,
                "counts": out[:, :-1].tolist(), "frames": out[:, -1].tolist()}
