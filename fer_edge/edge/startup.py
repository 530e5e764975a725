"""What one edge run opens at start (``loop.run`` holds them on one ``contextlib.ExitStack``, which
closes them in reverse whichever way the run ends): the source first (a wrong --source fails in a
second, not after the model has loaded), the pipeline (the model checked against its contract, the
detector), the CSV log (``open_inputs``), then the other sinks (``open_sinks``: window, web view, MQTT).

Adding a sink: a class with ``name``, ``write(result)``, ``close()`` and ``counters()`` (sinks.Sink),
built in ``open_sinks``. Anything in START_ERRORS raised here ends the run with exit 2 and its message.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from fer_edge import __version__
from fer_edge.common.config import Config, resolve_path
from fer_edge.common.contract import ContractError
from fer_edge.common.interpreter import ModelLoadError, RuntimeMissingError
from fer_edge.edge.console import has_display
from fer_edge.edge.csvlog import CsvLog, CsvLogError
from fer_edge.edge.detect import DetectorError
from fer_edge.edge.mqtt import MqttReporter
from fer_edge.edge.overlay import Window
from fer_edge.edge.pipeline import Pipeline
from fer_edge.edge.signals import Signals
from fer_edge.edge.sinks import Sink
from fer_edge.edge.sources import FrameSource, SourceError, make_source, open_interruptible
from fer_edge.edge.telemetry import Metrics, RecentResults

log = logging.getLogger(__name__)


class StartError(Exception):
    """Something at start that is neither a file nor a key of its own module (no display for the window)."""


# What stops a run at start with exit 2; the messages name the file or key (MqttConfigError is a ValueError).
START_ERRORS = (StartError, SourceError, ContractError, ModelLoadError, RuntimeMissingError, DetectorError,
                CsvLogError, ValueError)


class Inputs(NamedTuple):
    source: FrameSource
    pipeline: Pipeline
    csv: CsvLog
    display: bool


@dataclass
class Outputs:
    sinks: list[Sink] = field(default_factory=list)            # after the CSV log, in the order they get each frame
    summaries: list[Callable[[], str]] = field(default_factory=list)    # more lines for the end-of-run summary
    where: str = ""                                             # their words in the start line


def open_inputs(cfg: Config, source: FrameSource | None, signals: Signals, stack: contextlib.ExitStack,
                headless: bool) -> Inputs | None:
    """The source, the pipeline and the CSV log, their closing on ``stack``; None when a stop signal
    came while the source was opening. Raises one of START_ERRORS."""
    e = cfg.edge
    display = False if headless else (e.display == "on" or (e.display == "auto" and has_display()))
    if display and not has_display():
        raise StartError("edge.display is 'on' but there is no display (DISPLAY/WAYLAND_DISPLAY unset): "
                         "use --headless or set edge.display to auto")
    if source is None:
        source = make_source(e.source, e.camera, loop=e.loop, max_image_mp=e.max_image_mp,
                             max_bad_frames=e.max_bad_frames)
    if not open_interruptible(source, signals.stop):
        log.info(f"{signals.signame}: stopping before {source.name} opened")
        return None
    stack.callback(source.close)
    log.debug(f"opened {source.name}")
    pipeline = Pipeline.from_config(cfg)
    csv = CsvLog.from_config(resolve_path(e.log), pipeline.labels, e.csv).open()
    stack.callback(_closing, csv)
    return Inputs(source, pipeline, csv, display)


def open_sinks(cfg: Config, labels: tuple[str, ...], display: bool, stop: threading.Event,
               metrics: Callable[[], Metrics], stack: contextlib.ExitStack) -> Outputs:
    """The sinks after the CSV log: the window, the web view (whose /metrics reads ``metrics``), MQTT;
    each one's close on ``stack``. Raises one of START_ERRORS."""
    mqtt = MqttReporter.from_config(cfg, labels)      # its files are checked before anything listens
    out = Outputs()

    def add(sink: Sink) -> None:
        out.sinks.append(sink)
        stack.callback(_closing, sink)

    if display:
        add(Window(labels, stop))
    if cfg.web.enabled:
        from fer_edge.edge import web  # lazy: only when enabled
        recent = RecentResults(labels, history_s=60 * cfg.web.history_minutes, metrics=metrics)
        add(recent)
        analyzer = Pipeline.from_config(cfg)    # its own interpreter: TFLite interpreters are not thread-safe
        try:
            server = web.start_in_thread(cfg, recent, analyzer)
        except OSError as exc:                  # the port is taken, the host cannot be bound
            raise StartError(str(exc)) from None
        stack.callback(_quietly, "stopping the web server", server.stop)
        out.where += f", web {server.url}"
    if mqtt is not None:
        add(mqtt.start())
        out.summaries.append(mqtt.summary)
        out.where += f", mqtt {mqtt.where} as {mqtt.device}"
    log.debug(f"outputs: csv{''.join(', ' + s.name for s in out.sinks)}")
    return out


def start_line(inputs: Inputs, outputs: Outputs) -> str:
    """What the run says first: version, source, log, model, detector, window and the other outputs."""
    clf = inputs.pipeline.classifier
    model = clf.model_path.name + (" with the mirror inside" if clf.mirror_inside else "")
    return (f"fer-edge {__version__}: {inputs.source.name} -> {inputs.csv.path} (model {model}, "
            f"detector {inputs.pipeline.detector.describe()}, window {'on' if inputs.display else 'off'}{outputs.where})")


def _closing(sink: Sink) -> None:
    _quietly(f"closing the {sink.name} output", sink.close)


def _quietly(doing: str, step: Callable[[], object]) -> None:
    """A step of the shutdown that must not stop the others: its failure is a warning."""
    try:
        step()
    except Exception as exc:
        log.warning(f"{doing}: {exc}")
