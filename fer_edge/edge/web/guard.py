"""Connection limits in front of the app: slow or idle peers cannot hold the web server.

uvicorn bounds the idle time between requests (keep-alive) but not the time a request head may take,
and accepts every connection until the process runs out of file descriptors. Here (an h11 protocol
subclass):

- a request head must arrive within ``web.request_timeout_s`` of the connection (or of the previous
  response), else the connection is closed (slowloris);
- above ``web.max_connections`` open connections, a new one is closed at once;
- what was closed is reported in one line per minute, and asyncio's "out of system resource"
  tracebacks (accept() failing with EMFILE) become the same kind of line.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

NOTE_EVERY_S = 60.0


class Notes:
    """Counts of events, printed to stderr at most once per ``every_s`` as one line."""

    def __init__(self, every_s: float = NOTE_EVERY_S):
        self.every_s = every_s
        self._counts: dict[str, int] = {}
        self._last = float("-inf")
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self._counts[what] = self._counts.get(what, 0) + 1
            now = time.monotonic()
            if now - self._last < self.every_s:
                return
            self._last = now
            counts, self._counts = self._counts, {}
        text = "; ".join(f"{n} {w}" for w, n in counts.items())
        log.info(f"web server: {text} (next note in {self.every_s:g} s at the earliest)")


class _AcceptFilter(logging.Filter):
    """asyncio's accept() errors (file descriptors exhausted) counted in a note, without a traceback."""

    def __init__(self, notes: Notes):
        super().__init__()
        self.notes = notes

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "out of system resource" in message:
            self.notes.add("accept() failures (out of file descriptors: lower web.max_connections or raise LimitNOFILE)")
            return False
        # asyncio retries accept() a second later; at shutdown the socket may be closed by then
        return not ("_start_serving" in message and "Invalid file descriptor" in str(record.exc_info and record.exc_info[1]))


def guarded_protocol(max_connections: int, head_timeout_s: float) -> type[H11Protocol]:
    """An H11Protocol class enforcing the two limits; its ``notes`` say what was refused or closed."""
    notes = Notes()
    logging.getLogger("asyncio").addFilter(_AcceptFilter(notes))

    class Guarded(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_timer: asyncio.TimerHandle | None = None
            if len(self.connections) > max_connections:
                notes.add(f"connections refused above web.max_connections ({max_connections})")
                transport.abort()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.cycle is not None and not self.cycle.response_complete:
                return                                    # a request is being served: its own limits apply
            if not self.transport.is_closing():
                notes.add(f"connections closed without a request head within {head_timeout_s:g} s "
                          "(web.request_timeout_s)")
                self.transport.abort()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    Guarded.notes = notes  # type: ignore[attr-defined]
    return Guarded
