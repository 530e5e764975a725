"""The web view (issue 6): live annotated stream, JSON API, Prometheus metrics, photo upload.

Used two ways:
- from the edge service, when ``web.enabled``: ``start_in_thread(cfg, live, analyzer)`` serves the
  same frames the loop processes (``live`` is its RecentResults sink) and returns an object with ``.stop()``;
- alone, without a camera: ``python -m fer_edge.edge.web`` (`make web`) serves the upload page and API.

Endpoints (all require web.token when one is set, as ``Authorization: Bearer`` or ``?token=``):
``/`` live page, ``/stream.mjpg`` MJPEG, ``/api/latest`` faces of the last frame, ``/api/health``,
``/metrics`` (Prometheus), ``/upload`` page, ``POST /api/predict`` (multipart field ``image``) ->
JSON faces + ``annotated_jpeg_base64``.
"""
from __future__ import annotations

from fer_edge.common.config import Config
from fer_edge.edge.telemetry import RecentResults
from fer_edge.edge.web.app import create_app
from fer_edge.edge.web.server import WebError, WebServer


def start_in_thread(cfg: Config, live: RecentResults | None, analyzer) -> WebServer:
    """Start the web server in a daemon thread; raises WebError if it cannot listen."""
    return WebServer(cfg, live, analyzer).start()


__all__ = ["start_in_thread", "create_app", "WebServer", "WebError"]
