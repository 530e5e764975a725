"""The MJPEG stream: one producer per server, any number of clients.

While at least one client watches, a single producer task asks RecentResults for the newest annotated
JPEG at most web.stream_fps times a second (one worker-thread hop and at most one encode per tick,
whatever the number of clients) and wakes the clients. Each client sends only the newest frame: a
slow client's send blocks only its own generator, and when it catches up it skips to the newest
frame instead of queueing old ones. The edge loop never waits for any of this.
"""
from __future__ import annotations

import asyncio
import logging
import threading

from starlette.concurrency import run_in_threadpool

from fer_edge.edge.telemetry import RecentResults

log = logging.getLogger(__name__)

BOUNDARY = "frame"
STOP_POLL_S = 0.25      # clients and the producer notice a server shutdown within this time


def part(jpeg: bytes) -> bytes:
    """One multipart/x-mixed-replace part."""
    return (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"


class Broadcaster:
    """Shares the newest JPEG of ``live`` between stream clients (event-loop thread only)."""

    def __init__(self, live: RecentResults, fps: float, quality: int, stopping: threading.Event):
        self.live, self.fps, self.quality, self.stopping = live, fps, quality, stopping
        self.seq = -1
        self.jpeg: bytes | None = None
        self.clients = 0
        self._task: asyncio.Task | None = None
        self._new: asyncio.Event | None = None
        self._errors = 0

    def _wake(self) -> None:
        new, self._new = self._new, asyncio.Event()
        assert new is not None
        new.set()

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        # The tick schedule below sets the rate; latest_jpeg's own limit is given 25% of slack so a
        # tick that wakes a little early (timer jitter) is not refused and the stream halved.
        cache_fps = self.fps * 1.25
        next_tick = loop.time()
        try:
            while self.clients > 0 and not self.stopping.is_set():
                # Hop to a worker thread (drawing + encoding) only when the loop published a new frame.
                if self.live.snapshot()[2] != self.seq:
                    try:
                        seq, jpeg = await run_in_threadpool(self.live.latest_jpeg, cache_fps, self.quality)
                    except Exception as exc:      # one bad frame must not end every stream
                        self._errors += 1
                        if self._errors <= 3:
                            log.warning(f"web stream: cannot encode frame {self.live.snapshot()[2]}: {exc}")
                        seq, jpeg = self.seq, None
                    if jpeg is not None and seq != self.seq:
                        self.seq, self.jpeg = seq, jpeg
                        self._wake()
                next_tick = max(next_tick + period, loop.time())    # fixed rate; never catch up in a burst
                await asyncio.sleep(min(next_tick - loop.time(), STOP_POLL_S))
        finally:
            self._wake()        # on shutdown: waiting clients see ``stopping`` and end

    async def frames(self):
        """Async generator of MJPEG parts for one client."""
        if self._new is None:
            self._new = asyncio.Event()
        self.clients += 1
        self.live.watchers = self.clients
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._produce())
        last = -1
        try:
            while not self.stopping.is_set():
                if self.jpeg is not None and self.seq != last:
                    last = self.seq
                    yield part(self.jpeg)
                else:
                    await self._new.wait()
        finally:
            self.clients -= 1
            self.live.watchers = self.clients
