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

import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from fer_edge import __version__
from fer_edge.common.config import resolve_path
from fer_edge.common.contract import ContractError
from fer_edge.common.interpreter import ModelLoadError, RuntimeMissingError
from fer_edge.edge.csvlog import CsvLog, CsvLogError
from fer_edge.edge.detect import DetectorError
from fer_edge.edge.telemetry import LiveState
from fer_edge.edge.mqtt import MqttConfigError, MqttReporter
from fer_edge.edge.notify import Watchdog, notify
from fer_edge.edge.pipeline import Pipeline
from fer_edge.edge.sources import Capture, FrameSource, SourceError, make_source, open_interruptible
from fer_edge.edge.signals import Signals
from fer_edge.edge.types import Frame

WINDOW = "fer-edge"
STATUS_EVERY_S = 5.0
RECONNECT_SAY_EVERY_S = 60.0  # a long camera absence: one journal line a minute, not one per attempt
STAGES_KEPT = 20000          # per-stage timings kept for the --stats-json percentiles
NO_FACE_NAMED = 5            # photos without a face named in the summary


_bar = None                  # the progress bar while one is shown: messages go above it


def _err(text: str) -> None:
    if _bar is not None:
        _bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM; Linux), None elsewhere. Unlike getrusage's
    ru_maxrss it starts afresh at exec, so it is not the launching process's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def has_display() -> bool:
    """True when a window can be opened (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


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

    def __init__(self, cfg: dict, pipeline: Pipeline, source: FrameSource, log: CsvLog,
                 display: bool, stats_json: Path | None, quiet: bool = False):
        self.cfg, self.e = cfg, cfg["edge"]
        self.pipeline, self.source, self.log = pipeline, source, log
        self.display, self.stats_json, self.quiet = display, stats_json, quiet
        self.no_face: list[str] = []     # photos without a face (names, for the summary)
        self.no_face_count = 0
        history_s = 60 * int(cfg["web"]["history_minutes"]) if cfg["web"]["enabled"] else 0
        self.live = LiveState(pipeline.labels, history_s=history_s)
        self.signals = Signals()
        self.watchdog = Watchdog()
        self.watch = StallWatch(float(self.e["camera"]["stall_timeout_s"]))
        self.capture: Capture | None = None
        self.web = None
        self.mqtt = None                 # MqttReporter when mqtt.enabled
        self.stages: dict[str, deque] = {}
        self.started = time.time()
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
                _err(f"warning: the read of {self.source.name} is stuck in the driver; abandoning that thread")
        try:
            self.source.close()
        except Exception as exc:          # closing a dead device may fail; we reopen anyway
            _err(f"warning: closing {self.source.name}: {exc}")

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
        c = self.e["camera"]
        attempts = c["reconnect_attempts"]          # 0: for ever (an unattended logger waits for its camera)
        of = f"/{attempts}" if attempts else ""
        _err(f"warning: {self.source.name}: {reason}; reconnecting")
        notify(f"STATUS=reconnecting {self.source.name}: {reason}")
        self._stop_capture()
        said = 0.0
        while attempts == 0 or self._failures < attempts:
            wait = min(float(c["reconnect_backoff_s"]) * 2 ** self._failures, float(c["reconnect_backoff_max_s"]))
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
                    _err(f"warning: reopening {self.source.name} failed (attempt {self._failures}{of}): {exc}")
                notify(f"STATUS=reconnecting {self.source.name}: attempt {self._failures} failed: {exc}")
                continue
            self.live.count("camera_reconnects")
            _err(f"note: {self.source.name} reopened (attempt {self._failures}{of})")
            self._start_capture()
            self.watch.reset()
            return True
        _err(f"error: {self.source.name} could not be reopened after {attempts} attempts; "
             "exiting so that systemd restarts the service")
        return False

    # ---- the loop ---------------------------------------------------------------------------
    def _record(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self.stages.setdefault(k, deque(maxlen=STAGES_KEPT)).append(v)

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
        e, cam = self.e, self.e["camera"]
        max_frames = e["max_frames"]
        stall = float(cam["stall_timeout_s"])
        self._start_capture()
        notify(f"READY=1\nSTATUS=running: {self.source.name} -> {self.log.path}")
        det = self.pipeline.detector
        detector = det.backend + ("+profile" if getattr(det, "profile", None) is not None else "")
        web = f", web {self.web.url}" if self.web is not None else ""
        if self.mqtt is not None:
            web += f", mqtt {self.mqtt.where} as {self.mqtt.device}"
        clf = self.pipeline.classifier
        model = clf.model_path.name + (" with the mirror inside" if clf.mirror_inside else "")
        _err(f"fer-edge {__version__}: {self.source.name} -> {self.log.path} (model {model}, "
             f"detector {detector}, window {'on' if self.display else 'off'}{web})")
        self._start_progress()
        self._failures = 0
        watch = self.watch
        watch.reset()
        prev = None
        code = 0
        while not self.signals.stop.is_set():
            if self.signals.reopen.is_set():
                self.signals.reopen.clear()
                _err(f"note: SIGHUP: reopening {self.log.path}")
                try:
                    self.log.reopen()
                except CsvLogError as exc:          # on_error=exit and the new file cannot be made
                    _err(f"error: {exc}")
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
                        _err(f"error: reading {self.source.name}: {item.message}")
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
                _err(f"error: {exc}")
                code = 1
                break
            t2 = time.perf_counter()
            if frame.still and not result.faces:
                self.no_face_count += 1
                if len(self.no_face) < NO_FACE_NAMED:
                    self.no_face.append(Path(item.grab.label).name)
            dt = (now - prev) if prev is not None else 0.0
            prev = now
            if dt > 0:
                self.fps = 1.0 / dt if self.fps == 0 else 0.9 * self.fps + 0.1 / dt
            timings = {"read": item.read_ms, **result.timings_ms, "csv": (t2 - t1) * 1e3}
            if self.display and not self._show(result):
                self.signals.stop.set()
            timings["total"] = (time.perf_counter() - t0) * 1e3 + item.read_ms
            self._record(timings)
            result = type(result)(result.frame, result.faces, timings)
            self.live.publish(result, self.fps)
            if self.mqtt is not None:
                self.mqtt.offer(result, self.fps)
            if _bar is not None:
                self._progress()
            self._sync_dropped(self.capture)
            self._sync_csv_counts()
            self.watchdog.progress()
            self._status(now)
            if max_frames and self.frames >= max_frames:
                break
        return code

    def _start_progress(self) -> None:
        """A progress bar for sources of known length, on a terminal only (not under systemd, in CI or
        in a pipe), refreshed at most 4 times a second."""
        global _bar
        length = getattr(self.source, "length", None)
        if length and self.e["max_frames"]:
            length = min(length, self.e["max_frames"])
        if self.quiet or not length or not sys.stderr.isatty():
            return
        from tqdm import tqdm
        _bar = tqdm(total=length, unit="frame", mininterval=0.25, dynamic_ncols=True, leave=False,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")
        self._bar_faces_at = 0.0

    def _progress(self) -> None:
        _bar.update(1)
        now = time.monotonic()
        if now - self._bar_faces_at >= 0.5:          # the postfix redraws the bar: twice a second at most
            self._bar_faces_at = now
            _bar.set_postfix_str(f"{self.faces} faces", refresh=False)

    def summary(self) -> list[str]:
        """What the run did, for the user at its end."""
        took = max(time.time() - self.started, 1e-9)
        skipped = self._corrupt_msgs
        lines = [f"fer-edge: {self.frames} frames in {took:.1f} s ({self.frames / took:.1f} frames/s)"
                 + (f", {skipped} unreadable or unusable skipped" if skipped else "")
                 + f"; {self.faces} faces, {self.log.rows} rows -> {self.log.path}"]
        shares = self.log.label_counts
        total = sum(shares.values())
        if total:
            lines.append("emotions: " + ", ".join(f"{k} {100.0 * v / total:.1f}%" for k, v in shares.most_common()))
        if self.no_face_count:
            more = f" (and {self.no_face_count - len(self.no_face)} more)" if self.no_face_count > len(self.no_face) else ""
            lines.append(f"no face found in {self.no_face_count} of {self.frames} photos: {', '.join(self.no_face)}{more}")
        if self.mqtt is not None:
            lines.append(self.mqtt.summary())
        return lines

    def _corrupt(self, message: str) -> None:
        if _bar is not None:
            _bar.update(1)
        self.live.count("corrupt_frames")
        n = self._corrupt_msgs
        if n <= 5 or n % 100 == 0:        # say it, but do not flood the journal
            _err(f"warning: skipped a corrupt frame ({message}); {n} so far")

    def _sync_csv_counts(self) -> None:
        m = self.live.metrics
        if self.log.rows != m.csv_rows:
            self.live.count("csv_rows", self.log.rows - m.csv_rows)
        if self.log.errors != m.csv_errors:
            self.live.count("csv_errors", self.log.errors - m.csv_errors)

    def shutdown(self, code: int) -> None:
        """Stop everything in order; the CSV is flushed and closed last of the data path."""
        global _bar
        notify("STOPPING=1")
        if _bar is not None:
            _bar.close()
            _bar = None
        if self.signals.signame:
            _err(f"note: {self.signals.signame}: stopping")
        self._stop_capture()
        self.log.close()
        self._sync_csv_counts()
        if self.web is not None:
            try:
                self.web.stop()
            except Exception as exc:
                _err(f"warning: stopping the web server: {exc}")
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.display:
            cv2.destroyAllWindows()
        if self.log.lost_rows:
            _err(f"warning: {self.log.lost_rows} CSV rows were lost because {self.log.path} could not be written")
        if self._corrupt_msgs:
            _err(f"note: {self._corrupt_msgs} reads of {self.source.name} failed or gave unusable frames and were skipped")
        if not self.quiet:
            for line in self.summary():
                _err(line)
        if self.stats_json is not None:
            self.write_stats(code)

    def stats(self, code: int) -> dict:
        """Counters and per-stage p50/p95 ms of this run."""
        m = self.live.metrics
        stages = {k: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
                      "mean": float(np.mean(v)), "n": len(v)} for k, v in self.stages.items() if v}
        from fer_edge.common.interpreter import runtime_name
        return {"exit_code": code, "frames": self.frames, "faces": self.faces, "csv_rows": self.log.rows,
                "csv_lost_rows": self.log.lost_rows, "csv_errors": self.log.errors,
                "dropped_frames": m.dropped_frames, "corrupt_frames": m.corrupt_frames,
                "camera_reconnects": m.camera_reconnects, "started_unix": self.started,
                "mqtt_sent": m.mqtt_sent, "mqtt_dropped": m.mqtt_dropped, "mqtt_reconnects": m.mqtt_reconnects,
                "first_row_unix": self.log.first_row_time, "ended_unix": time.time(),
                "runtime": runtime_name(), "tensorflow_imported": "tensorflow" in sys.modules,
                "peak_rss_mb": peak_rss_mb(),
                "stages_ms": stages}

    def write_stats(self, code: int) -> None:
        try:
            self.stats_json.parent.mkdir(parents=True, exist_ok=True)
            self.stats_json.write_text(json.dumps(self.stats(code), indent=2) + "\n")
        except OSError as exc:
            _err(f"warning: cannot write stats {self.stats_json}: {exc}")


def run(cfg: dict, source: FrameSource | None = None, stats_json: str | Path | None = None,
        headless: bool = False, quiet: bool = False) -> int:
    """Run the edge loop with a validated config; returns the process exit code (0, 1 or 2).

    ``source`` replaces ``edge.source`` (tests pass a fake camera here).
    """
    e = cfg["edge"]
    cv2.setNumThreads(1)     # one frame at a time; OpenCV's pool only adds overhead and steals the capture core
    cv2.ocl.setUseOpenCL(False)   # no OpenCL device on a Pi; probing for one costs start-up time and memory
    signals = Signals()
    signals.install()        # before the slow start, so a SIGTERM during start-up is still a clean stop
    display = False if headless else (e["display"] == "on" or (e["display"] == "auto" and has_display()))
    if display and not has_display():
        _err("error: edge.display is 'on' but there is no display (DISPLAY/WAYLAND_DISPLAY unset): "
             "use --headless or set edge.display to auto")
        return 2
    # The source first: a wrong --source fails in a second, not after the model has loaded.
    try:
        if source is None:
            source = make_source(e["source"], e["camera"], loop=e["loop"], max_image_mp=e["max_image_mp"],
                                 max_bad_frames=e["max_bad_frames"])
        opened = open_interruptible(source, signals.stop)
    except SourceError as exc:
        _err(f"error: {exc}")
        signals.restore()
        return 2
    if not opened:                   # SIGTERM/SIGINT while the source was still opening
        _err(f"note: {signals.signame}: stopping before {source.name} opened")
        signals.restore()
        return 0
    try:
        pipeline = Pipeline.from_config(cfg)
        log = CsvLog.from_config(resolve_path(e["log"]), pipeline.labels, e["csv"]).open()
    except (ContractError, ModelLoadError, RuntimeMissingError, DetectorError, CsvLogError, ValueError) as exc:
        _err(f"error: {exc}")
        source.close()
        signals.restore()
        return 2
    svc = Service(cfg, pipeline, source, log, display, Path(stats_json) if stats_json else None, quiet=quiet)
    svc.signals = signals
    try:
        svc.mqtt = MqttReporter.from_config(cfg, pipeline.labels, svc.live.count, _err)
    except MqttConfigError as exc:
        _err(f"error: {exc}")
        log.close()
        source.close()
        signals.restore()
        return 2
    code = 0
    try:
        if cfg["web"]["enabled"]:
            from fer_edge.edge import web  # lazy: only when enabled
            try:
                # The analyzer has its own interpreter: TFLite interpreters are not thread-safe.
                svc.web = web.start_in_thread(cfg, svc.live, Pipeline.from_config(cfg))
            except OSError as exc:
                _err(f"error: cannot start the web view on {cfg['web']['host']}:{cfg['web']['port']}: {exc}. "
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
