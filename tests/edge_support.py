"""Helpers for the edge tests: real frames from the shared clips, a fake camera (the one piece of
hardware CI does not have), a recording NOTIFY_SOCKET, and running ``python -m fer_edge.edge``."""
from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from fer_edge.edge.sources import Grab

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def clip_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """BGR frames at ``indices`` (sorted) of a real clip."""
    cap = cv2.VideoCapture(str(path))
    out, i, want = [], 0, sorted(indices)
    while want:
        ok, img = cap.read()
        if not ok:
            break
        if i == want[0]:
            out.append(img)
            want.pop(0)
        i += 1
    cap.release()
    assert len(out) == len(indices), f"{path} has fewer frames than {indices}"
    return out


def edge_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "NOTIFY_SOCKET",
                                                              "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def edge_cmd(*args: str) -> list[str]:
    return [PY, "-m", "fer_edge.edge", *args]


def run_edge(*args: str, timeout: float = 180, **env) -> subprocess.CompletedProcess:
    """Run ``python -m fer_edge.edge ARGS`` to completion."""
    return subprocess.run(edge_cmd(*args), cwd=ROOT, env=edge_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def read_log(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV log; asserts that every line parses whole and the file ends with a newline."""
    text = Path(path).read_text()
    assert text.endswith("\n"), f"{path} ends with a partial line: {text[-80:]!r}"
    lines = list(csv.reader(text.splitlines()))
    header, rows = lines[0], lines[1:]
    for r in rows:
        assert len(r) == len(header), f"row {r} does not match header {header}"
    return header, rows


class FakeCamera:
    """A camera we do not have, in the FrameSource shape, replaying real frames at ``fps``.

    ``fault`` after ``after`` frames: 'die' (read returns None: unplugged), 'hang' (read blocks
    ``hang_s``), 'garbage' (every other read gives an unusable array), 'stale' (the same buffer
    again and again, as a frozen driver does), or None. ``open_failures`` re-opens fail first.
    """

    live = True

    def __init__(self, frames: list[np.ndarray], fault: str | None = None, after: int = 10, fps: float = 50.0,
                 hang_s: float = 30.0, open_failures: int = 0, fault_once: bool = True):
        self.name = "fake camera"
        self.frames, self.fault, self.after, self.fps = frames, fault, after, fps
        self.hang_s, self.open_failures, self.fault_once = hang_s, open_failures, fault_once
        self.opens = 0
        self.good_opens = 0
        self.reads = 0
        self.fault_started: float | None = None
        self._open = False
        self._hang = threading.Event()

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.open_failures > 0:
            self.open_failures -= 1
            raise OSError("fake camera: no such device")
        self._open = True
        self.good_opens += 1
        self.reads = 0

    def read(self) -> Grab | None:
        if not self._open:
            return None
        time.sleep(1.0 / self.fps)
        self.reads += 1
        active = self.fault is not None and self.reads > self.after and (not self.fault_once or self.good_opens == 1)
        if active and self.fault_started is None:
            self.fault_started = time.monotonic()
        if active:
            if self.fault == "die":
                return None
            if self.fault == "hang":
                self._hang.wait(self.hang_s)
                return None
            if self.fault == "garbage" and self.reads % 2 == 0:
                return Grab(np.zeros((4, 4, 2), np.uint8), self.name)
            if self.fault == "stale":
                return Grab(self.frames[0], self.name)
        img = self.frames[self.reads % len(self.frames)]
        # Real sensors never give two identical frames: add a little noise like one.
        noisy = cv2.add(img, np.full_like(img, self.reads % 3))
        return Grab(noisy, self.name)

    def close(self) -> None:
        self._open = False
        self._hang.set()
        self._hang = threading.Event()


class NotifyRecorder:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET; records (time, message)."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.messages: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:                     # stops only once the socket is empty: no datagram sent is lost
            try:
                data = self._sock.recv(4096)
            except socket.timeout:
                if self._stop.is_set():
                    return
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode().splitlines():
                self.messages.append((now, line))

    def times(self, message: str) -> list[float]:
        return [t for t, m in self.messages if m == message]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self._sock.close()
