"""systemd's sd_notify protocol, without libsystemd: tell the service manager how we are doing.

The unit (systemd/fer-edge.service) is ``Type=notify`` with ``WatchdogSec=``: the loop sends
``READY=1`` once the model and the camera are open, ``WATCHDOG=1`` whenever it makes progress
(so a hung camera read or a deadlocked loop gets the service restarted, which a timer thread
would hide), and ``STOPPING=1`` on shutdown. Outside systemd ``$NOTIFY_SOCKET`` is unset and
every call is a cheap no-op, so the same code runs from a terminal.

Protocol: one datagram of newline-separated ``KEY=VALUE`` assignments sent to the AF_UNIX
socket named by ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract namespace.
"""
from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)

_warned = False     # a send error is logged once: the loop calls us every frame


def _address(name: str) -> str | None:
    """$NOTIFY_SOCKET -> a socket address, or None if we cannot speak to it."""
    if name.startswith("@"):
        return "\0" + name[1:]          # abstract namespace
    if name.startswith("/"):
        return name
    return None                         # e.g. "vsock:..." (VMs): not used on a Pi or laptop


def _warn_once(text: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("sd_notify: %s (further notify errors are not logged)", text)


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``, ``"WATCHDOG=1"``, ``"STATUS=..."``) to systemd.

    Returns True when the datagram was sent, False when ``$NOTIFY_SOCKET`` is unset (not run by
    systemd) or the send failed. Never raises: a broken notify channel must not stop the
    logging; the first failure is logged once.
    """
    name = os.environ.get("NOTIFY_SOCKET", "")
    if not name or not message:
        return False
    addr = _address(name)
    if addr is None:
        _warn_once(f"unsupported NOTIFY_SOCKET {name!r}")
        return False
    try:
        # A fresh socket per message, as libsystemd does: no state to go stale across a
        # systemd re-exec, and at watchdog rates (a few per second) the cost is negligible.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), addr)
        return True
    except OSError as exc:
        _warn_once(f"cannot send {message.splitlines()[0]!r} to {name}: {exc}")
        return False


def watchdog_interval() -> float | None:
    """The watchdog period in seconds from ``$WATCHDOG_USEC``, or None when no watchdog is armed.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for: a child that
    inherited the variables gets None. Ping at about half this interval.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """Rate-limits ``WATCHDOG=1``: call ``progress()`` every time the loop makes progress.

    Sends at most one ping per half watchdog interval (``interval`` defaults to
    ``watchdog_interval()``); does nothing when no watchdog is armed.
    """

    def __init__(self, interval: float | None = None, clock=time.monotonic):
        self.interval = watchdog_interval() if interval is None else interval
        self._clock = clock
        self._last = float("-inf")

    def progress(self) -> bool:
        """Ping systemd if half the interval has passed since the last ping; True if sent."""
        if not self.interval:
            return False
        now = self._clock()
        if now - self._last < self.interval / 2:
            return False
        self._last = now
        return notify("WATCHDOG=1")
