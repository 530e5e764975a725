"""Signals of the edge process: SIGTERM/SIGINT ask the loop to stop after the current frame, SIGHUP asks
for the CSV log to be reopened (logrotate). ``hold_early`` records them from the first lines of
``python -m fer_edge.edge`` (imports take a second on a Pi; the default action would kill the process)
and ``Signals.install`` acts on what it recorded, so a stop during start-up is still a clean one."""
from __future__ import annotations

import signal
import threading

_PENDING: list[int] = []


def hold_early() -> None:
    """Record SIGTERM, SIGINT and SIGHUP until ``Signals.install`` takes over (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, lambda signum, _frame: _PENDING.append(signum))


class Signals:
    """SIGTERM/SIGINT ask the loop to stop after the current frame; SIGHUP asks for a CSV reopen."""

    def __init__(self):
        self.stop = threading.Event()
        self.reopen = threading.Event()
        self.signame = ""
        self._old = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return                                   # signals can only be handled in the main thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            self._old[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self.reopen.set())
        while _PENDING:                              # what arrived during the imports
            signum = _PENDING.pop(0)
            if signum == getattr(signal, "SIGHUP", None):
                self.reopen.set()
            else:
                self._on_stop(signum, None)

    def _on_stop(self, signum, _frame) -> None:
        self.signame = signal.Signals(signum).name
        self.stop.set()

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
