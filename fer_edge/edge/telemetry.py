"""The hand-off from the edge loop to the web view: the latest frame and result, and counters.

The loop calls ``publish`` once per frame (cheap: it stores references). The web server reads
``snapshot()`` and, only while somebody watches, asks for JPEGs via ``latest_jpeg`` which encodes
at most ``max_fps`` times per second, once for all watchers. Nothing here blocks the loop.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import cv2

from fer_edge.edge.history import EmotionHistory
from fer_edge.edge.types import FrameResult


@dataclass
class Metrics:
    frames: int = 0
    faces: int = 0
    dropped_frames: int = 0
    corrupt_frames: int = 0
    camera_reconnects: int = 0
    csv_rows: int = 0
    csv_errors: int = 0
    mqtt_sent: int = 0
    mqtt_dropped: int = 0
    mqtt_reconnects: int = 0
    stage_ms_sum: dict = field(default_factory=lambda: defaultdict(float))
    stage_count: dict = field(default_factory=lambda: defaultdict(int))


class LiveState:
    def __init__(self, labels: tuple[str, ...] = (), history_s: int = 0):
        self._lock = threading.Lock()
        self.labels = labels
        self.history = EmotionHistory(labels, history_s) if history_s else None
        self.started = time.time()
        self.metrics = Metrics()
        self._result: FrameResult | None = None
        self._fps = 0.0
        self._seq = 0                       # increments on every publish
        self.watchers = 0                   # number of open stream clients (web server maintains it)
        # JPEG cache of the annotated latest frame, shared by every stream client (see latest_jpeg).
        self._jpeg_lock = threading.Lock()  # serialises encodes; never taken by publish()
        self._jpeg: bytes | None = None
        self._jpeg_seq = -1
        self._jpeg_time = 0.0
        self.jpeg_encodes = 0               # how many encodes happened (tests/benchmarks check laziness)

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
            if self.history is not None:
                self.history.add(time.time(), [f.label for f in result.faces])

    def count(self, name: str, n: int = 1) -> None:
        """Increment a counter of ``Metrics`` (dropped_frames, camera_reconnects, ...)."""
        with self._lock:
            setattr(self.metrics, name, getattr(self.metrics, name) + n)

    def snapshot(self) -> tuple[FrameResult | None, float, int]:
        """(latest result, fps, sequence number)."""
        with self._lock:
            return self._result, self._fps, self._seq

    def history_series(self, seconds: int) -> dict | None:
        """The emotion history of the last ``seconds`` (see EmotionHistory.series); None when it is off."""
        if self.history is None:
            return None
        with self._lock:                    # copy under the lock, compute outside: the loop never waits on it
            history = self.history.copy()
        return {**history.series(seconds), "running_since_unix": int(self.started)}

    def metrics_snapshot(self) -> Metrics:
        """A consistent copy of the counters (for /metrics), taken under the lock."""
        with self._lock:
            return copy.deepcopy(self.metrics)

    def latest_jpeg(self, max_fps: float, quality: int = 80) -> tuple[int, bytes | None]:
        """(sequence number, JPEG of the annotated latest frame); None before the first frame.

        Called by stream clients only, so nothing is encoded while nobody watches. Encodes at most
        ``max_fps`` times per second and only when a new frame was published; every caller in
        between gets the cached bytes, so N watchers cost one encode. Runs in the caller's thread:
        the edge loop never waits for it (publish() does not take the encode lock).
        """
        from fer_edge.edge.overlay import draw  # imported here: only needed once somebody watches

        with self._jpeg_lock:
            now = time.monotonic()
            result, fps, seq = self.snapshot()
            if result is None:
                return seq, None
            fresh = seq == self._jpeg_seq or (now - self._jpeg_time) < 1.0 / max_fps
            if self._jpeg is not None and fresh:
                return self._jpeg_seq, self._jpeg
            image = draw(result.frame.image, result, self.labels, fps)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for frame {result.frame.index} ({image.shape})")
            self._jpeg, self._jpeg_seq, self._jpeg_time = buf.tobytes(), seq, now
            self.jpeg_encodes += 1
            return self._jpeg_seq, self._jpeg
