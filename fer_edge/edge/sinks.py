"""Where results go: every output of the edge loop is a sink.

The loop hands each frame's result to every sink in turn (``write``), closes them at the end
(``close``, in the reverse order of opening) and reads their ``counters`` for the summary,
``--stats-json``, /metrics and systemd's status line. A sink never blocks the loop for long: a slow
consumer (a broker, a browser) gets its own thread and a bounded queue inside the sink.

The sinks today: ``csvlog.CsvLog`` (the durable record), ``overlay.Window``, the web view's
``telemetry.RecentResults`` and ``mqtt.MqttReporter``; ``startup.open_sinks`` builds them.
"""
from __future__ import annotations

from typing import Protocol

from fer_edge.edge.types import FrameResult


class SinkError(Exception):
    """A sink cannot go on and its policy says stop (the CSV log with edge.csv.on_error=exit): exit 1."""


class Sink(Protocol):
    name: str               # the stage name of its write time in --stats-json and /metrics

    def write(self, result: FrameResult) -> object:
        """Take one frame's result; raise SinkError only when the run must stop."""

    def close(self) -> None:
        """Flush and release (called once, at the end of the run)."""

    def counters(self) -> dict[str, int]:
        """Its counters, by their names in --stats-json and /metrics (``csv_rows``...), read from any thread."""
