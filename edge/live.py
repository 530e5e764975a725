"""The hand-off from the edge loop to the web view: the latest frame and result, and counters.

The loop calls ``publish`` once per frame (cheap: it stores references). The web server reads
``snapshot()`` and, only while somebody watches, asks for JPEGs via ``latest_jpeg`` which encodes
at most ``max_fps`` times per second, once for all watchers. Nothing here blocks the loop.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from edge.types import FrameResult


@dataclass
class Metrics:
    frames: int = 0
    faces: int = 0
    dropped_frames: int = 0
    corrupt_frames: int = 0
    camera_reconnects: int = 0
    csv_rows: int = 0
    csv_errors: int = 0
    stage_ms_sum: dict = field(default_factory=lambda: defaultdict(float))
    stage_count: dict = field(default_factory=lambda: defaultdict(int))


class LiveState:
    def __init__(self, labels: tuple[str, ...] = ()):
        self._lock = threading.Lock()
        self.labels = labels
        self.started = time.time()
        self.metrics = Metrics()
        self._result: FrameResult | None = None
        self._fps = 0.0
        self._seq = 0                       # increments on every publish
        self.watchers = 0                   # number of open stream clients (web server maintains it)

    def publish(self, result: FrameResult, fps: float) -> None:
        with self._lock:
            self._result, self._fps = result, fps
            self._seq += 1
            m = self.metrics
            m.frames += 1
            m.faces += len(result.faces)
            for k, v in result.timings_ms.items():
                m.stage_ms_sum[k] += v
                m.stage_count[k] += 1

    def count(self, name: str, n: int = 1) -> None:
        """Increment a counter of ``Metrics`` (dropped_frames, camera_reconnects, ...)."""
        with self._lock:
            setattr(self.metrics, name, getattr(self.metrics, name) + n)

    def snapshot(self) -> tuple[FrameResult | None, float, int]:
        """(latest result, fps, sequence number)."""
        with self._lock:
            return self._result, self._fps, self._seq
