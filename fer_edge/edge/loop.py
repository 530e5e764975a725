"""The edge loop: source -> pipeline -> sinks (CSV, window, web), run unattended under systemd.

Fault tolerance lives here, not in the stages:
- frames are read by a capture thread (edge.sources.Capture); the loop waits with a timeout, so a
  camera that hangs or dies is noticed after ``edge.camera.stall_timeout_s`` and reopened with
  exponential backoff, for ever by default (``reconnect_attempts`` 0); with a limit, after that
  many failures we exit 1 and systemd restarts us.
  Video files and image folders simply end (exit 0).
- sd_notify: READY=1 once model, log and source are open; WATCHDOG=1 from the loop itself when it
  makes progress (a processed frame or a reconnect attempt), so pings stop if it hangs; STOPPING=1.
- SIGTERM/SIGINT: finish the current frame, close the CSV, exit 0. SIGHUP: reopen the CSV.
- CSV write errors follow edge.csv.on_error (see edge.csv log).
Exit codes: 0 done, 1 runtime failure (camera gone, log unwritable with on_error=exit), 2 bad input
at start (config, model, cascade, source, log path).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_edge import __version__
from fer_edge.common.config import Config, resolve_path
from fer_edge.common.contract import ContractError
from fer_edge.common.interpreter import ModelLoadError, RuntimeMissingError
from fer_edge.edge.console import Progress, has_display, say
from fer_edge.edge.csvlog import CsvLog, CsvLogError
from fer_edge.edge.detect import DetectorError
from fer_edge.edge.mqtt import MqttConfigError, MqttReporter
from fer_edge.edge.notify import Watchdog, notify
from fer_edge.edge.pipeline import Pipeline
from fer_edge.edge.runstats import RunRecord, write_stats
from fer_edge.edge.signals import Signals
from fer_edge.edge.sources import Capture, FrameSource, SourceError, make_source, open_interruptible
from fer_edge.edge.telemetry import LiveState
from fer_edge.edge.types import Frame

if TYPE_CHECKING:
    from fer_edge.edge.web.server import WebServer

WINDOW = "fer-edge"
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
    """Everything one run holds: pipeline, source, capture thread, log, window, web server, counters."""

    def __init__(self, cfg: Config, pipeline: Pipeline, source: FrameSource, log: CsvLog,
                 display: bool, stats_json: Path | None, quiet: bool = False):
        self.cfg, self.e = cfg, cfg.edge
        self.pipeline, self.source, self.log = pipeline, source, log
        self.display, self.stats_json, self.quiet = display, stats_json, quiet
        self.record = RunRecord()        # stage timings, photos without a face
        history_s = 60 * cfg.web.history_minutes if cfg.web.enabled else 0
        self.live = LiveState(pipeline.labels, history_s=history_s)
        self.signals = Signals()
        self.watchdog = Watchdog()
        self.watch = StallWatch(self.e.camera.stall_timeout_s)
        self.capture: Capture | None = None
        self.web: WebServer | None = None
        self.mqtt: MqttReporter | None = None
        self.progress = Progress(None, quiet=True)
        self.fps = 0.0
        self._dropped_seen = 0
        self._lost_reported = 0
        self._last_status = 0.0

    # ---- the counters live in one place: the telemetry the web view and /metrics read
    @property
    def frames(self) -> int:
        return self.live.metrics.frames

    @property
    def faces(self) -> int:
        return self.live.metrics.faces

    @property
    def _corrupt_msgs(self) -> int:
        return self.live.metrics.corrupt_frames

    # ---- source supervision -----------------------------------------------------------------
    def _start_capture(self) -> None:
        self.capture = Capture(self.source).start()
        self._dropped_seen = 0

    def _stop_capture(self) -> None:
        if self.capture is not None:
            cap, self.capture = self.capture, None
            self._sync_dropped(cap)
            if not cap.stop(join_s=0.5):
                say(f"warning: the read of {self.source.name} is stuck in the driver; abandoning that thread")
        try:
            self.source.close()
        except Exception as exc:          # closing a dead device may fail; we reopen anyway
            say(f"warning: closing {self.source.name}: {exc}")

    def _sync_dropped(self, cap: Capture) -> None:
        new = cap.dropped - self._dropped_seen
        if new > 0:
            self.live.count("dropped_frames", new)
            self._dropped_seen = cap.dropped

    def _reconnect(self, reason: str) -> bool:
        """Reopen a live source with exponential backoff. False when the attempts are used up.

        ``self._failures`` counts attempts since the last processed frame, so a camera that opens
        but never delivers still runs out of attempts instead of cycling forever.
        """
        c = self.e.camera
        attempts = c.reconnect_attempts          # 0: for ever (an unattended logger waits for its camera)
        of = f"/{attempts}" if attempts else ""
        say(f"warning: {self.source.name}: {reason}; reconnecting")
        notify(f"STATUS=reconnecting {self.source.name}: {reason}")
        self._stop_capture()
        said = 0.0
        while attempts == 0 or self._failures < attempts:
            wait = min(c.reconnect_backoff_s * 2 ** self._failures, c.reconnect_backoff_max_s)
            if self.signals.stop.wait(wait):
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
                    say(f"warning: reopening {self.source.name} failed (attempt {self._failures}{of}): {exc}")
                notify(f"STATUS=reconnecting {self.source.name}: attempt {self._failures} failed: {exc}")
                continue
            self.live.count("camera_reconnects")
            say(f"note: {self.source.name} reopened (attempt {self._failures}{of})")
            self._start_capture()
            self.watch.reset()
            return True
        say(f"error: {self.source.name} could not be reopened after {attempts} attempts; "
            "exiting so that systemd restarts the service")
        return False

    # ---- the loop ---------------------------------------------------------------------------
    def _show(self, result) -> bool:
        """Draw and show the frame; False when the user closed the window or pressed q/Esc."""
        from fer_edge.edge.overlay import draw
        cv2.imshow(WINDOW, draw(result.frame.image, result, self.pipeline.labels, self.fps))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return False
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1

    def _status(self, now: float) -> None:
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            notify(f"STATUS={self.fps:.1f} fps, {self.frames} frames, {self.log.rows} rows, "
                   f"{self.log.lost_rows} rows lost, {self.live.metrics.camera_reconnects} reconnects")

    def run(self) -> int:
        """Run until the source ends, max_frames, a signal, q/Esc, or a fatal error. Returns the exit code."""
        max_frames = self.e.max_frames
        stall = self.e.camera.stall_timeout_s
        self._start_capture()
        assert self.capture is not None
        notify(f"READY=1\nSTATUS=running: {self.source.name} -> {self.log.path}")
        det = self.pipeline.detector
        detector = det.describe()
        web = f", web {self.web.url}" if self.web is not None else ""
        if self.mqtt is not None:
            web += f", mqtt {self.mqtt.where} as {self.mqtt.device}"
        clf = self.pipeline.classifier
        model = clf.model_path.name + (" with the mirror inside" if clf.mirror_inside else "")
        say(f"fer-edge {__version__}: {self.source.name} -> {self.log.path} (model {model}, "
            f"detector {detector}, window {'on' if self.display else 'off'}{web})")
        length = getattr(self.source, "length", None)
        if length and max_frames:
            length = min(length, max_frames)
        self.progress = Progress(length, self.quiet)
        self._failures = 0
        watch = self.watch
        watch.reset()
        prev = None
        code = 0
        while not self.signals.stop.is_set():
            if self.signals.reopen.is_set():
                self.signals.reopen.clear()
                say(f"note: SIGHUP: reopening {self.log.path}")
                try:
                    self.log.reopen()
                except CsvLogError as exc:          # on_error=exit and the new file cannot be made
                    say(f"error: {exc}")
                    code = 1
                    break
            item = self.capture.get(timeout=0.1)
            now = time.monotonic()
            if item is None:
                if self.source.live and watch.silent(now) and not self._reconnect(f"no frame for {stall:g} s"):
                    code = 1
                    break
                continue
            if item.kind in ("end", "error"):
                if not self.source.live:
                    if item.kind == "error":
                        say(f"error: reading {self.source.name}: {item.message}")
                        code = 1
                    break
                why = "stopped delivering frames" if item.kind == "end" else item.message
                if not self._reconnect(why):
                    code = 1
                    break
                continue
            if item.kind == "corrupt":
                self._corrupt(item.message)
                continue
            assert item.grab is not None and item.timestamp is not None     # a frame, not an end or an error
            image = item.grab.image
            if self.source.live and watch.frozen(image, now):
                if not self._reconnect(f"frozen: the same frame for {stall:g} s"):
                    code = 1
                    break
                continue
            watch.delivered(now)
            t0 = time.perf_counter()
            frame = Frame(image, self.frames, item.grab.label, item.timestamp, still=item.grab.still)
            try:
                result = self.pipeline.process(frame)
            except ValueError as exc:
                self._corrupt(f"{item.grab.label}: {exc}")
                continue
            self._failures = 0
            t1 = time.perf_counter()
            try:
                self.log.write(result)
            except CsvLogError as exc:
                say(f"error: {exc}")
                code = 1
                break
            t2 = time.perf_counter()
            if frame.still and not result.faces:
                self.record.photo_without_face(item.grab.label)
            dt = (now - prev) if prev is not None else 0.0
            prev = now
            if dt > 0:
                self.fps = 1.0 / dt if self.fps == 0 else 0.9 * self.fps + 0.1 / dt
            timings = {"read": item.read_ms, **result.timings_ms, "csv": (t2 - t1) * 1e3}
            if self.display and not self._show(result):
                self.signals.stop.set()
            timings["total"] = (time.perf_counter() - t0) * 1e3 + item.read_ms
            self.record.timings(timings)
            result = type(result)(result.frame, result.faces, timings)
            self.live.publish(result, self.fps)
            if self.mqtt is not None:
                self.mqtt.offer(result, self.fps)
            self.progress.advance(self.faces)
            self._sync_dropped(self.capture)
            self._sync_csv_counts()
            self.watchdog.progress()
            self._status(now)
            if max_frames and self.frames >= max_frames:
                break
        return code

    def summary(self) -> list[str]:
        """What the run did, for the user at its end."""
        return self.record.summary(self.frames, self.faces, self._corrupt_msgs, self.log,
                                   [self.mqtt.summary()] if self.mqtt is not None else [])

    def _corrupt(self, message: str) -> None:
        self.progress.advance()
        self.live.count("corrupt_frames")
        n = self._corrupt_msgs
        if n <= 5 or n % 100 == 0:        # say it, but do not flood the journal
            say(f"warning: skipped a corrupt frame ({message}); {n} so far")

    def _sync_csv_counts(self) -> None:
        m = self.live.metrics
        if self.log.rows != m.csv_rows:
            self.live.count("csv_rows", self.log.rows - m.csv_rows)
        if self.log.errors != m.csv_errors:
            self.live.count("csv_errors", self.log.errors - m.csv_errors)

    def shutdown(self, code: int) -> None:
        """Stop everything in order; the CSV is flushed and closed last of the data path."""
        notify("STOPPING=1")
        self.progress.close()
        if self.signals.signame:
            say(f"note: {self.signals.signame}: stopping")
        self._stop_capture()
        self.log.close()
        self._sync_csv_counts()
        if self.web is not None:
            try:
                self.web.stop()
            except Exception as exc:
                say(f"warning: stopping the web server: {exc}")
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.display:
            cv2.destroyAllWindows()
        if self.log.lost_rows:
            say(f"warning: {self.log.lost_rows} CSV rows were lost because {self.log.path} could not be written")
        if self._corrupt_msgs:
            say(f"note: {self._corrupt_msgs} reads of {self.source.name} failed or gave unusable frames and were skipped")
        if not self.quiet:
            for line in self.summary():
                say(line)
        if self.stats_json is not None:
            self.write_stats(code)

    def stats(self, code: int) -> dict:
        """Counters and per-stage p50/p95 ms of this run."""
        return self.record.stats(code, self.frames, self.faces, self.log, self.live.metrics)

    def write_stats(self, code: int) -> None:
        assert self.stats_json is not None
        write_stats(self.stats_json, self.stats(code), say)


def run(cfg: Config, source: FrameSource | None = None, stats_json: str | Path | None = None,
        headless: bool = False, quiet: bool = False) -> int:
    """Run the edge loop with a validated config; returns the process exit code (0, 1 or 2).

    ``source`` replaces ``edge.source`` (tests pass a fake camera here).
    """
    e = cfg.edge
    cv2.setNumThreads(1)     # one frame at a time; OpenCV's pool only adds overhead and steals the capture core
    cv2.ocl.setUseOpenCL(False)   # no OpenCL device on a Pi; probing for one costs start-up time and memory
    signals = Signals()
    signals.install()        # before the slow start, so a SIGTERM during start-up is still a clean stop
    display = False if headless else (e.display == "on" or (e.display == "auto" and has_display()))
    if display and not has_display():
        say("error: edge.display is 'on' but there is no display (DISPLAY/WAYLAND_DISPLAY unset): "
            "use --headless or set edge.display to auto")
        return 2
    # The source first: a wrong --source fails in a second, not after the model has loaded.
    try:
        if source is None:
            source = make_source(e.source, e.camera, loop=e.loop, max_image_mp=e.max_image_mp,
                                 max_bad_frames=e.max_bad_frames)
        opened = open_interruptible(source, signals.stop)
    except SourceError as exc:
        say(f"error: {exc}")
        signals.restore()
        return 2
    if not opened:                   # SIGTERM/SIGINT while the source was still opening
        say(f"note: {signals.signame}: stopping before {source.name} opened")
        signals.restore()
        return 0
    try:
        pipeline = Pipeline.from_config(cfg)
        log = CsvLog.from_config(resolve_path(e.log), pipeline.labels, e.csv).open()
    except (ContractError, ModelLoadError, RuntimeMissingError, DetectorError, CsvLogError, ValueError) as exc:
        say(f"error: {exc}")
        source.close()
        signals.restore()
        return 2
    svc = Service(cfg, pipeline, source, log, display, Path(stats_json) if stats_json else None, quiet=quiet)
    svc.signals = signals
    try:
        svc.mqtt = MqttReporter.from_config(cfg, pipeline.labels, svc.live.count, say)
    except MqttConfigError as exc:
        say(f"error: {exc}")
        log.close()
        source.close()
        signals.restore()
        return 2
    code = 0
    try:
        if cfg.web.enabled:
            from fer_edge.edge import web  # lazy: only when enabled
            try:
                # The analyzer has its own interpreter: TFLite interpreters are not thread-safe.
                svc.web = web.start_in_thread(cfg, svc.live, Pipeline.from_config(cfg))
            except OSError as exc:
                say(f"error: cannot start the web view on {cfg.web.host}:{cfg.web.port}: {exc}. "
                    "Pick another web.port or stop the program using it.")
                return 2
        if svc.mqtt is not None:
            svc.mqtt.start()
        if not signals.stop.is_set():
            code = svc.run()
    finally:
        svc.shutdown(code)
        signals.restore()
    return code
