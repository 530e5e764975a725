"""The /metrics page in the Prometheus text exposition format (version 0.0.4)."""
from __future__ import annotations

import re

from fer_edge.edge.telemetry import Metrics

_COUNTERS = (
    ("frames", "Frames processed by the pipeline."),
    ("faces", "Faces classified (summed over frames)."),
    ("dropped_frames", "Frames dropped because the pipeline was busy."),
    ("corrupt_frames", "Frames skipped because they could not be decoded."),
    ("camera_reconnects", "Times the camera was reopened."),
    ("csv_rows", "Rows written to the CSV emotion log."),
    ("csv_errors", "Failed writes to the CSV emotion log."),
    ("mqtt_sent", "MQTT messages handed to the broker connection."),
    ("mqtt_dropped", "MQTT messages not sent (broker away) and frames the MQTT thread could not take (broker slow)."),
    ("mqtt_reconnects", "Times the MQTT connection was made again after the first."),
)


def _label(value: str) -> str:
    return re.sub(r'[\\"\n]', lambda m: {"\\": r"\\", '"': r'\"', "\n": r"\n"}[m.group()], value)


def render(metrics: Metrics | None, fps: float, current_faces: int, uptime_s: float,
           watchers: int, predictions: int, jpeg_encodes: int = 0) -> str:
    """Counters, gauges and per-stage latency (a summary: _sum in seconds and _count)."""
    m = metrics if metrics is not None else Metrics()
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP fer_{name} {help_}")
        lines.append(f"# TYPE fer_{name} {kind}")
        lines.extend(f"fer_{name}{labels} {value:.9g}" for labels, value in samples)

    for key, help_ in _COUNTERS:
        metric(f"{key}_total", "counter", help_, [("", getattr(m, key))])
    stages = sorted(m.stage_count)
    lines.append("# HELP fer_stage_latency_seconds Time spent per pipeline stage and frame.")
    lines.append("# TYPE fer_stage_latency_seconds summary")
    for stage in stages:
        lab = f'{{stage="{_label(stage)}"}}'
        lines.append(f"fer_stage_latency_seconds_sum{lab} {m.stage_ms_sum[stage] / 1e3:.9g}")
        lines.append(f"fer_stage_latency_seconds_count{lab} {m.stage_count[stage]}")
    metric("fps", "gauge", "Pipeline frames per second (as measured by the edge loop).", [("", fps)])
    metric("faces_current", "gauge", "Faces in the latest frame.", [("", current_faces)])
    metric("uptime_seconds", "gauge", "Seconds since the web view started.", [("", uptime_s)])
    metric("stream_clients", "gauge", "Open MJPEG stream connections.", [("", watchers)])
    metric("stream_jpeg_encodes_total", "counter", "Annotated frames JPEG-encoded for the stream (shared by all clients).",
           [("", jpeg_encodes)])
    metric("web_predictions_total", "counter", "Photos analysed through POST /api/predict.", [("", predictions)])
    return "\n".join(lines) + "\n"
