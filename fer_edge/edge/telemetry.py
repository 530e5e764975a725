"""What the web view reads of the running loop: the latest result and the recent emotions
(``RecentResults``, a sink), and the run's counters (``Tally`` and the sinks' ``counters()``,
gathered into ``Metrics`` by the loop).

The loop writes each result to ``RecentResults`` (cheap: it stores references). The web server reads
``snapshot()`` and, only while somebody watches, asks for JPEGs via ``latest_jpeg`` which encodes
at most ``max_fps`` times per second, once for all watchers. Nothing here blocks the loop.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Callable

import cv2

from fer_edge.edge.history import EmotionHistory
from fer_edge.edge.types import FrameResult


@dataclass
class Metrics:
    """A copy of every counter of a run at one moment, and the per-stage latency sums (/metrics)."""
    frames: int = 0
    faces: int = 0
    dropped_frames: int = 0
    corrupt_frames: int = 0
    camera_reconnects: int = 0
    csv_rows: int = 0
    csv_lost_rows: int = 0
    csv_errors: int = 0
    mqtt_sent: int = 0
    mqtt_dropped: int = 0
    mqtt_reconnects: int = 0
    stage_ms_sum: dict[str, float] = field(default_factory=dict)
    stage_count: dict[str, int] = field(default_factory=dict)


COUNTERS = tuple(f.name for f in fields(Metrics) if f.name not in ("stage_ms_sum", "stage_count"))   # --stats-json's too


class Tally:
    """The loop's own counters (frames, faces, corrupt frames, camera reconnects) and the per-stage
    latency sums. The loop adds; other threads read a consistent copy (``metrics``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"frames": 0, "faces": 0, "corrupt_frames": 0, "camera_reconnects": 0}
        self._ms: dict[str, float] = {}
        self._n: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def add(self, name: str, n: int = 1) -> int:
        """Count ``n`` more of ``name``; returns the new total."""
        with self._lock:
            self._counts[name] += n
            return self._counts[name]

    def frame(self, faces: int, timings_ms: dict[str, float]) -> None:
        """One processed frame with ``faces`` faces and its stage timings."""
        with self._lock:
            self._counts["frames"] += 1
            self._counts["faces"] += faces
            for k, v in timings_ms.items():
                self._ms[k] = self._ms.get(k, 0.0) + v
                self._n[k] = self._n.get(k, 0) + 1

    def metrics(self, *more: dict[str, int]) -> Metrics:
        """These counters with ``more`` (the sinks' counters()) as one Metrics; unknown names are left out."""
        with self._lock:
            m = Metrics(stage_ms_sum=dict(self._ms), stage_count=dict(self._n), **self._counts)
        for counts in more:
            for k, v in counts.items():
                if k in COUNTERS:
                    setattr(m, k, getattr(m, k) + v)
        return m


class RecentResults:
    """The web view's sink: the latest result and its frame rate, the emotion counts of the last
    ``history_s`` seconds, and the JPEG of the annotated latest frame while somebody watches.
    ``metrics`` gives the run's counters for /metrics and /api/health."""

    name = "web"

    def __init__(self, labels: tuple[str, ...] = (), history_s: int = 0, metrics: Callable[[], Metrics] = Metrics):
        self._lock = threading.Lock()
        self.labels = labels
        self.history = EmotionHistory(labels, history_s) if history_s else None
        self.started = time.time()
        self._metrics = metrics
        self._result: FrameResult | None = None
        self._fps = 0.0
        self._seq = 0                       # increments on every write
        self.watchers = 0                   # number of open stream clients (web server maintains it)
        # JPEG cache of the annotated latest frame, shared by every stream client (see latest_jpeg).
        self._jpeg_lock = threading.Lock()  # serialises encodes; never taken by write()
        self._jpeg: bytes | None = None
        self._jpeg_seq = -1
        self._jpeg_time = 0.0
        self.jpeg_encodes = 0               # how many encodes happened (tests/benchmarks check laziness)

    def write(self, result: FrameResult) -> None:
        with self._lock:
            self._result, self._fps = result, result.fps
            self._seq += 1
            if self.history is not None:
                self.history.add(time.time(), [f.label for f in result.faces])

    def close(self) -> None:
        """Nothing to release: the web server, stopped before, was the only reader."""

    def counters(self) -> dict[str, int]:
        return {}

    @property
    def metrics(self) -> Metrics:
        return self.metrics_snapshot()

    def metrics_snapshot(self) -> Metrics:
        """A consistent copy of the run's counters (for /metrics)."""
        return self._metrics()

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

    def latest_jpeg(self, max_fps: float, quality: int = 80) -> tuple[int, bytes | None]:
        """(sequence number, JPEG of the annotated latest frame); None before the first frame.

        Called by stream clients only, so nothing is encoded while nobody watches. Encodes at most
        ``max_fps`` times per second and only when a new frame was written; every caller in
        between gets the cached bytes, so N watchers cost one encode. Runs in the caller's thread:
        the edge loop never waits for it (write() does not take the encode lock).
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
