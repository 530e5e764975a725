"""The capture thread: it reads a source and queues what it read, as in Frigate. A read that hangs
in a driver can never hang the loop, which waits on the queue with a timeout."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fer_edge.edge.imageread import CorruptFrame
from fer_edge.edge.sources import FrameSource, Grab


def open_interruptible(source: FrameSource, stop: threading.Event, poll_s: float = 0.05) -> bool:
    """``source.open()`` in a helper thread, so that a driver or a network camera that blocks cannot
    hold up a SIGTERM: True when it opened, False when ``stop`` was set first (the helper closes the
    source if its open returns later). The open's own exception is raised here."""
    box: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            source.open()
        except BaseException as exc:        # noqa: BLE001 - handed to the caller
            box["error"] = exc
        done.set()
        if stop.is_set() and "error" not in box:
            try:
                source.close()
            except Exception:               # noqa: BLE001 - abandoned: nothing to report to
                pass

    threading.Thread(target=target, name=f"open {source.name}", daemon=True).start()
    while not done.wait(poll_s):
        if stop.is_set():
            return False
    if "error" in box:
        raise box["error"]
    return True



@dataclass(frozen=True)
class Item:
    """What the capture thread hands the loop: kind is 'frame', 'corrupt', 'end' or 'error'."""
    kind: str
    grab: Grab | None = None
    timestamp: datetime | None = None
    read_ms: float = 0.0
    message: str = ""


class Capture:
    """Reads a source in a daemon thread into a bounded queue.

    Live sources drop the oldest queued frame when the loop is behind (counted in ``dropped``):
    the loop should work on the newest picture. Files and folders wait instead (no frame lost).
    """

    def __init__(self, source: FrameSource, queue_size: int = 2):
        self.source = source
        self.dropped = 0
        self._q: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)

    def start(self) -> "Capture":
        self._thread.start()
        return self

    def _put(self, item: Item) -> None:
        if self.source.live:
            while not self._stop.is_set():
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        else:
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                grab = self.source.read()
            except CorruptFrame as exc:
                self._put(Item("corrupt", message=str(exc)))
                continue
            except Exception as exc:     # a driver/library error: the loop decides (reconnect or end)
                self._put(Item("error", message=f"{type(exc).__name__}: {exc}"))
                return
            if self._stop.is_set():
                return
            if grab is None:
                self._put(Item("end"))
                return
            self._put(Item("frame", grab, datetime.now(timezone.utc), (time.perf_counter() - t0) * 1e3))

    def get(self, timeout: float) -> Item | None:
        """The next item, or None when nothing arrived within ``timeout`` seconds."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self, join_s: float = 1.0) -> bool:
        """Ask the thread to stop; True if it ended (a read hung in a driver may not return)."""
        self._stop.set()
        self._thread.join(join_s)
        return not self._thread.is_alive()
