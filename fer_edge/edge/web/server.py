"""Run the web app with uvicorn: in a daemon thread beside the edge loop, or in the main thread.

The listening socket is bound here, before uvicorn starts, so a busy port or a bad address is a
clear error naming web.host/web.port in the caller's thread instead of a log line in another thread.
"""
from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading

import uvicorn

from fer_edge.common.config import Config
from fer_edge.edge.telemetry import RecentResults
from fer_edge.edge.web.app import create_app
from fer_edge.edge.web.guard import guarded_protocol

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class WebError(OSError):
    """The web server could not start (address in use, bad host, ...)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or WebError that says which setting to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WebError(f"config key 'web.host': cannot resolve {host!r} ({exc}); use 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WebError(f"config keys 'web.host'/'web.port': cannot listen on {host}:{port} ({exc.strerror or exc}); "
                       "pick another web.port or stop the program that uses it") from None
    return sock


class WebServer:
    """uvicorn serving ``create_app(cfg, live, analyzer)`` on web.host:web.port."""

    def __init__(self, cfg: Config, live: RecentResults | None, analyzer):
        w = cfg.web
        self.sock = bind(w.host, w.port)
        self.host, self.port = self.sock.getsockname()[:2]
        loopback = ipaddress.ip_address(self.host.split("%")[0]).is_loopback
        self.app = create_app(cfg, live, analyzer, loopback_only=loopback)
        if not w.token and not loopback:
            log.warning(f"the web view listens on {self.host}:{self.port}, reachable from the network, without "
                        "a token: anyone there can watch the camera. Set web.token, or web.host: 127.0.0.1.")
        # h11 + asyncio: pure Python, nothing to compile on a Pi; no access log (it would hold ?token=).
        # Slow or surplus peers are cut off in the protocol (guard.py); h11's head size limit stays.
        http = guarded_protocol(w.max_connections, w.request_timeout_s)
        config = uvicorn.Config(self.app, http=http, loop="asyncio", ws="none", lifespan="off",
                                log_level="warning", access_log=False, timeout_graceful_shutdown=int(STOP_TIMEOUT_S))
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:   # SystemExit from uvicorn included: report it to start()/stop()
            self._error = exc

    def start(self) -> "WebServer":
        """Serve from a daemon thread (its own event loop); returns once requests are accepted."""
        self._thread = threading.Thread(target=self._run, name="fer-web", daemon=True)
        self._thread.start()
        while not self.server.started:
            self._thread.join(0.05)
            if not self._thread.is_alive():
                self.sock.close()
                raise WebError(f"web server on {self.url} stopped while starting: {self._error!r}")
        return self

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM, then stop cleanly (exit code 0, as systemd expects).

        Call from the main thread. The server runs in its thread as with ``start``; handling the
        signals here (not in uvicorn, which re-raises them after shutting down) keeps the exit clean.
        """
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            assert self._thread is not None
            while not stop.wait(0.5):
                if not self._thread.is_alive():
                    raise WebError(f"web server on {self.url} stopped unexpectedly: {self._error!r}")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """End the streams, let uvicorn shut down, join its thread (then force it)."""
        self.app.state.web.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
        self.sock.close()
