"""The edge loop: source -> pipeline -> sinks, run unattended under systemd (``Service``; startup.py
opens and closes what it runs on).

Fault tolerance lives here, not in the stages:
- frames are read by a capture thread (edge.sources.Capture); the loop waits with a timeout, so a
  camera that hangs or dies is noticed after ``edge.camera.stall_timeout_s`` and reopened with
  exponential backoff, for ever by default (``reconnect_attempts`` 0); with a limit, after that
  many failures we exit 1 and systemd restarts us.
  Video files and image folders simply end (exit 0).
- sd_notify: READY=1 once model, log and source are open; WATCHDOG=1 from the loop itself when it
  makes progress (a processed frame or a reconnect attempt), so pings stop if it hangs; STOPPING=1.
- SIGTERM/SIGINT: finish the current frame, close the sinks, exit 0. SIGHUP: reopen the CSV.
- A sink that cannot go on (SinkError: the CSV log with edge.csv.on_error=exit) ends the run with exit 1.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from fer_edge.common.config import Config
from fer_edge.edge import startup
from fer_edge.edge.console import Progress, say
from fer_edge.edge.csvlog import CsvLog, CsvLogError
from fer_edge.edge.notify import Watchdog, notify
from fer_edge.edge.pipeline import Pipeline
from fer_edge.edge.runstats import RunRecord, write_stats, write_stats_of_no_run
from fer_edge.edge.signals import Signals
from fer_edge.edge.sinks import Sink, SinkError
from fer_edge.edge.sources import Capture, FrameSource, Item, open_interruptible
from fer_edge.edge.telemetry import COUNTERS, Metrics, Tally
from fer_edge.edge.types import Frame

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
RECONNECT_SAY_EVERY_S = 60.0  # a long camera absence: one journal line a minute, not one per attempt


class StallWatch:
    """When a live source last delivered a frame, and since when it has delivered the very same image
    (a frozen driver: real sensors never give two bit-identical frames in a row for seconds)."""

    def __init__(self, stall_s: float):
        self.stall_s = stall_s
        self.reset()

    def reset(self) -> None:
        """After a (re)open: the timers start again."""
        self.last_frame = self.same_since = time.monotonic()
        self.last_sig: bytes | None = None

    def delivered(self, now: float) -> None:
        self.last_frame = now

    def silent(self, now: float) -> bool:
        return now - self.last_frame > self.stall_s

    def frozen(self, image: np.ndarray, now: float) -> bool:
        sig = image[::16, ::16].tobytes()
        if sig != self.last_sig:
            self.last_sig, self.same_since = sig, now
            return False
        return now - self.same_since > self.stall_s


class Service:
    """One run: the source and its capture thread, the pipeline, the sinks, the counters.

    ``csv`` is the durable record among the sinks (SIGHUP reopens it; the summary quotes it). The
    counters live with whoever counts: the loop's own in ``tally``, each sink's in the sink; ``metrics``
    and ``counters`` read them all.
    """

    def __init__(self, cfg: Config, pipeline: Pipeline, source: FrameSource, csv: CsvLog, signals: Signals,
                 stats_json: Path | None = None, quiet: bool = False):
        cam = cfg.edge.camera
        self.max_frames = cfg.edge.max_frames
        self.attempts = cam.reconnect_attempts          # 0: for ever (an unattended logger waits for its camera)
        self.backoff_s, self.backoff_max_s = cam.reconnect_backoff_s, cam.reconnect_backoff_max_s
        self.pipeline, self.source, self.csv, self.signals = pipeline, source, csv, signals
        self.sinks: list[Sink] = [csv]
        self.stats_json, self.quiet = stats_json, quiet
        self.banner = ""                                        # the start line (startup.py)
        self.extra_summary: list[Callable[[], str]] = []        # more summary lines (MQTT's)
        self.record = RunRecord()        # stage timings, photos without a face
        self.tally = Tally()
        self.watchdog = Watchdog()
        self.watch = StallWatch(cam.stall_timeout_s)
        self.capture: Capture | None = None
        self._capture_lock = threading.Lock()
        self._dropped_before = 0          # dropped by the capture threads of before a reconnect
        self.progress = Progress(None, quiet=True)
        self.fps = 0.0
        self._failures = 0
        self._prev: float | None = None
        self._last_status = 0.0

    # ---- counters ---------------------------------------------------------------------------
    def _dropped(self) -> int:
        with self._capture_lock:
            return self._dropped_before + (self.capture.dropped if self.capture is not None else 0)

    def metrics(self) -> Metrics:
        """Every counter of the run and the per-stage latency sums, from any thread (/metrics)."""
        return self.tally.metrics({"dropped_frames": self._dropped()}, *(s.counters() for s in self.sinks))

    def counters(self) -> dict[str, int]:
        m = self.metrics()
        return {k: getattr(m, k) for k in COUNTERS}

    # ---- source supervision -----------------------------------------------------------------
    def _start_capture(self) -> None:
        self.capture = Capture(self.source).start()

    def _stop_capture(self) -> None:
        cap = self.capture
        if cap is not None:
            if not cap.stop(join_s=0.5):
                log.warning(f"the read of {self.source.name} is stuck in the driver; abandoning that thread")
            with self._capture_lock:
                self._dropped_before += cap.dropped
                self.capture = None
        try:
            self.source.close()
        except Exception as exc:          # closing a dead device may fail; we reopen anyway
            log.warning(f"closing {self.source.name}: {exc}")

    def _reconnect(self, reason: str) -> bool:
        """Reopen a live source with exponential backoff. False when the attempts are used up.

        ``self._failures`` counts attempts since the last processed frame, so a camera that opens
        but never delivers still runs out of attempts instead of cycling forever.
        """
        attempts = self.attempts
        of = f"/{attempts}" if attempts else ""
        log.warning(f"{self.source.name}: {reason}; reconnecting")
        notify(f"STATUS=reconnecting {self.source.name}: {reason}")
        self._stop_capture()
        said = 0.0
        while attempts == 0 or self._failures < attempts:
            if self.signals.stop.wait(min(self.backoff_s * 2 ** self._failures, self.backoff_max_s)):
                return True                       # asked to stop while waiting: not a failure
            self._failures += 1
            self.watchdog.progress()              # the supervisor is working, not hung
            try:
                if not open_interruptible(self.source, self.signals.stop):
                    return True                   # asked to stop while the device was opening
            except Exception as exc:
                now = time.monotonic()
                if self._failures <= 3 or now - said >= RECONNECT_SAY_EVERY_S:    # the journal gets a line a minute
                    said = now
                    log.warning(f"reopening {self.source.name} failed (attempt {self._failures}{of}): {exc}")
                notify(f"STATUS=reconnecting {self.source.name}: attempt {self._failures} failed: {exc}")
                continue
            self.tally.add("camera_reconnects")
            log.info(f"{self.source.name} reopened (attempt {self._failures}{of})")
            self._start_capture()
            self.watch.reset()
            return True
        log.error(f"{self.source.name} could not be reopened after {attempts} attempts; "
                  "exiting so that systemd restarts the service")
        return False

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Run until the source ends, max_frames, a signal, q/Esc, or a fatal error. Returns the exit code."""
        self._start_capture()
        notify(f"READY=1\nSTATUS=running: {self.source.name} -> {self.csv.path}")
        say(self.banner)
        length = getattr(self.source, "length", None)
        if length and self.max_frames:
            length = min(length, self.max_frames)
        self.progress = Progress(length, self.quiet)
        self._failures = 0
        self.watch.reset()
        try:
            return self._loop()
        finally:
            self.progress.close()
            self._stop_capture()

    def _loop(self) -> int:
        stall = self.watch.stall_s
        while not self.signals.stop.is_set():
            if self.signals.reopen.is_set() and not self._reopen_csv():
                return 1
            assert self.capture is not None
            item = self.capture.get(timeout=0.1)
            now = time.monotonic()
            if item is None or item.kind != "frame":
                code = self._no_frame(item, now)
                if code is not None:
                    return code
                continue
            assert item.grab is not None
            if self.source.live and self.watch.frozen(item.grab.image, now):
                if not self._reconnect(f"frozen: the same frame for {stall:g} s"):
                    return 1
                continue
            self.watch.delivered(now)
            if not self._frame(item, now):
                return 1
            if self.max_frames and self.tally["frames"] >= self.max_frames:
                break
        return 0

    def _no_frame(self, item: Item | None, now: float) -> int | None:
        """A wait without a frame, a corrupt read, the source's end or its error: None to go on, else the exit code."""
        if item is None:
            stalled = self.source.live and self.watch.silent(now)
            return 1 if stalled and not self._reconnect(f"no frame for {self.watch.stall_s:g} s") else None
        if item.kind == "corrupt":
            self._corrupt(item.message)
            return None
        if not self.source.live:
            if item.kind == "error":
                log.error(f"reading {self.source.name}: {item.message}")
                return 1
            return 0
        return None if self._reconnect("stopped delivering frames" if item.kind == "end" else item.message) else 1

    def _frame(self, item: Item, now: float) -> bool:
        """Process one frame and hand it to every sink; False when a sink stops the run."""
        assert item.grab is not None and item.timestamp is not None
        t0 = time.perf_counter()
        grab = item.grab
        frame = Frame(grab.image, self.tally["frames"], grab.label, item.timestamp, still=grab.still)
        try:
            result = self.pipeline.process(frame)
        except ValueError as exc:
            self._corrupt(f"{grab.label}: {exc}")
            return True
        self._failures = 0
        if frame.still and not result.faces:
            self.record.photo_without_face(grab.label)
        dt = (now - self._prev) if self._prev is not None else 0.0
        self._prev = now
        if dt > 0:
            self.fps = 1.0 / dt if self.fps == 0 else 0.9 * self.fps + 0.1 / dt
        result = replace(result, fps=self.fps)
        timings = {"read": item.read_ms, **result.timings_ms}
        try:
            for sink in self.sinks:
                t = time.perf_counter()
                sink.write(result)
                timings[sink.name] = (time.perf_counter() - t) * 1e3
        except SinkError as exc:
            log.error("%s", exc)
            return False
        timings["total"] = (time.perf_counter() - t0) * 1e3 + item.read_ms
        self.record.timings(timings)
        self.tally.frame(len(result.faces), timings)
        self.progress.advance(self.tally["faces"])
        self.watchdog.progress()
        self._status(now)
        return True

    def _reopen_csv(self) -> bool:
        """SIGHUP (logrotate moved the log): False when the new file cannot be made and on_error=exit."""
        self.signals.reopen.clear()
        log.info(f"SIGHUP: reopening {self.csv.path}")
        try:
            self.csv.reopen()
        except CsvLogError as exc:
            log.error("%s", exc)
            return False
        return True

    def _corrupt(self, message: str) -> None:
        self.progress.advance()
        n = self.tally.add("corrupt_frames")
        if n <= 5 or n % 100 == 0:        # say it, but do not flood the journal
            log.warning(f"skipped a corrupt frame ({message}); {n} so far")

    def _status(self, now: float) -> None:
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            c = self.counters()
            notify(f"STATUS={self.fps:.1f} fps, {c['frames']} frames, {c['csv_rows']} rows, "
                   f"{c['csv_lost_rows']} rows lost, {c['camera_reconnects']} reconnects")

    # ---- the end ----------------------------------------------------------------------------
    def report(self, code: int) -> None:
        """Once the sinks are closed: what was lost or skipped, the summary (not with --quiet), --stats-json."""
        c = self.counters()
        if c["csv_lost_rows"]:
            log.warning(f"{c['csv_lost_rows']} CSV rows were lost because {self.csv.path} could not be written")
        if c["corrupt_frames"]:
            log.info(f"{c['corrupt_frames']} reads of {self.source.name} failed or gave unusable frames and were skipped")
        if not self.quiet:
            extra = [line() for line in self.extra_summary]
            for line in self.record.summary(c["frames"], c["faces"], c["corrupt_frames"], self.csv, extra):
                say(line)
        write_stats(self.stats_json, self.record.stats(code, c, self.csv.first_row_time))


def run(cfg: Config, source: FrameSource | None = None, stats_json: str | Path | None = None,
        headless: bool = False, quiet: bool = False) -> int:
    """Run the edge loop with a validated config; returns the process exit code: 0 done (also when
    stopped by a signal), 1 runtime failure (camera gone, log unwritable with on_error=exit), 2 bad
    input at start (startup.START_ERRORS: one line naming the file or key, no summary). --stats-json
    is written on every path. ``source`` replaces ``edge.source`` (tests pass a fake camera here).
    """
    cv2.setNumThreads(1)     # one frame at a time; OpenCV's pool only adds overhead and steals the capture core
    cv2.ocl.setUseOpenCL(False)   # no OpenCL device on a Pi; probing for one costs start-up time and memory
    stats = Path(stats_json) if stats_json else None
    with contextlib.ExitStack() as stack:          # closes what was opened, in reverse, on every path
        signals = Signals()
        signals.install()        # before the slow start, so a SIGTERM during start-up is still a clean stop
        stack.callback(signals.restore)
        try:
            inputs = startup.open_inputs(cfg, source, signals, stack, headless)
            if inputs is None:                     # stopped while the source was opening
                write_stats_of_no_run(stats, 0)
                return 0
            svc = Service(cfg, inputs.pipeline, inputs.source, inputs.csv, signals, stats, quiet)
            outputs = startup.open_sinks(cfg, inputs.pipeline.labels, inputs.display, signals.stop, svc.metrics, stack)
        except startup.START_ERRORS as exc:
            log.error("%s", exc)
            write_stats_of_no_run(stats, 2)
            return 2
        svc.sinks += outputs.sinks
        svc.extra_summary, svc.banner = outputs.summaries, startup.start_line(inputs, outputs)
        stack.callback(notify, "STOPPING=1")
        code = svc.run() if not signals.stop.is_set() else 0
        if signals.signame:
            log.info(f"{signals.signame}: stopping")
    svc.report(code)
    return code
