"""What one run of the edge did: the summary a user reads at its end and the ``--stats-json`` record
the benchmarks read (counters, per-stage p50/p95 ms, peak memory: private and resident)."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from fer_edge.edge.telemetry import COUNTERS

log = logging.getLogger(__name__)

STAGES_KEPT = 20000          # per-stage timings kept for the percentiles
NO_FACE_NAMED = 5            # photos without a face named in the summary
PRIVATE_EVERY = 50           # frames between samples of the private memory (a /proc read, ~20 us)


def _status_mb(key: str) -> float | None:
    """A memory figure of /proc/self/status in MB (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM), None off Linux. Unlike getrusage's ru_maxrss it
    starts afresh at exec, so it is not the launching process's size. It counts the file-backed pages
    of the shared libraries (OpenCV, libavcodec) too, which differ from machine to machine."""
    return _status_mb("VmHWM")


def private_mb() -> float | None:
    """This process's private (anonymous) resident memory now (RssAnon): what it allocated itself,
    the figure to hold to a memory target."""
    return _status_mb("RssAnon")


class RunRecord:
    """Timings per stage (the last STAGES_KEPT of each) and the photos in which no face was found."""

    def __init__(self) -> None:
        self.started = time.time()
        self.stages: dict[str, deque[float]] = {}
        self.no_face: list[str] = []
        self.no_face_count = 0
        self.calls = 0
        self.peak_private: float | None = None

    def sample_private(self) -> None:
        now = private_mb()
        if now is not None and (self.peak_private is None or now > self.peak_private):
            self.peak_private = now

    def timings(self, ms: dict[str, float]) -> None:
        for k, v in ms.items():
            self.stages.setdefault(k, deque(maxlen=STAGES_KEPT)).append(v)
        self.calls += 1
        if self.calls % PRIVATE_EVERY == 1:
            self.sample_private()

    def photo_without_face(self, label: str) -> None:
        self.no_face_count += 1
        if len(self.no_face) < NO_FACE_NAMED:
            self.no_face.append(Path(label).name)

    def summary(self, frames: int, faces: int, skipped: int, log, extra: list[str]) -> list[str]:
        """The lines a user reads at the end of a run; ``log`` is the CsvLog, ``extra`` more lines (MQTT)."""
        took = max(time.time() - self.started, 1e-9)
        lines = [f"fer-edge: {frames} frames in {took:.1f} s ({frames / took:.1f} frames/s)"
                 + (f", {skipped} unreadable or unusable skipped" if skipped else "")
                 + f"; {faces} faces, {log.rows} rows -> {log.path}"]
        shares = log.label_counts
        total = sum(shares.values())
        if total:
            lines.append("emotions: " + ", ".join(f"{k} {100.0 * v / total:.1f}%" for k, v in shares.most_common()))
        if self.no_face_count:
            more = f" (and {self.no_face_count - len(self.no_face)} more)" if self.no_face_count > len(self.no_face) else ""
            lines.append(f"no face found in {self.no_face_count} of {frames} photos: {', '.join(self.no_face)}{more}")
        return lines + extra

    def stats(self, code: int, counts: dict[str, int], first_row_unix: float | None) -> dict:
        """The exit code, the counters (0 for those of outputs that were not opened), per-stage p50/p95 ms."""
        from fer_edge.common.interpreter import loaded_runtime
        self.sample_private()
        stages = {k: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
                      "mean": float(np.mean(v)), "n": len(v)} for k, v in self.stages.items() if v}
        return {"exit_code": code, **{k: int(counts.get(k, 0)) for k in COUNTERS},
                "started_unix": self.started, "first_row_unix": first_row_unix, "ended_unix": time.time(),
                "runtime": loaded_runtime(), "tensorflow_imported": "tensorflow" in sys.modules,
                "peak_rss_mb": peak_rss_mb(), "peak_private_mb": self.peak_private,
                "stages_ms": stages}


def write_stats(path: Path | None, stats: dict) -> None:
    """``stats`` as JSON at ``path`` (--stats-json; nothing without one)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats, indent=2) + "\n")
    except OSError as exc:
        log.warning(f"cannot write stats {path}: {exc}")


def write_stats_of_no_run(path: Path | None, code: int) -> None:
    """--stats-json of a run that ended before its loop (a failure or a stop at start): its exit code, every counter 0."""
    write_stats(path, RunRecord().stats(code, {}, None))
