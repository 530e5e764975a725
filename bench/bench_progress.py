"""What the progress bar costs the loop: the same run with stderr on a terminal (bar shown) and on a
pipe (no bar), alternated, 3 times each, whole ``python -m fer_edge.edge`` process pinned to CPU 0 on the
640x480 clip (cap12 upscaled). Reported: frames/s per run and the medians' difference.
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.bench_edge import CLIP, ROOT, _env, _upscale

TITLE = "Progress bar: frames/s with and without it (same run)"
RUNS = 3


def _timed(clip: Path, log: Path, terminal: bool) -> float:
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "fer_edge.edge", "--headless", "--source", str(clip), "--log", str(log)]
    t0 = time.perf_counter()
    if not terminal:
        subprocess.run(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        return time.perf_counter() - t0
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    while True:                          # drain the terminal as a user's would be read
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk[-200:]
        elif p.poll() is not None:
            break
    os.close(master)
    if p.wait() != 0:
        raise RuntimeError(f"python -m fer_edge.edge exited {p.returncode}")
    took = time.perf_counter() - t0
    if b"%|" not in seen and b"frames in" not in seen:
        raise AssertionError("no progress output on the terminal")
    return took


def run() -> str:
    if not CLIP.is_file() or shutil.which("taskset") is None:
        return "Not measured: the clip or `taskset` is missing.\n"
    rows, fps = [], {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench_progress_") as d:
        tmp = Path(d)
        big = tmp / "cap12_640x480.mp4"
        _upscale(CLIP, big)
        frames = 1337
        for i in range(RUNS):
            for terminal in (True, False):
                took = _timed(big, tmp / f"e{i}{terminal}.csv", terminal)
                fps[terminal].append(frames / took)
                rows.append(f"| {i + 1} | {'terminal (bar)' if terminal else 'pipe (no bar)'} | {frames / took:.1f} |")
    on, off = statistics.median(fps[True]), statistics.median(fps[False])
    return "\n".join([
        f"Median: **{on:.1f}** frames/s with the bar, **{off:.1f}** without ({100 * (on - off) / off:+.1f}%; "
        "runs alternate, so the host's drift hits both).",
        "",
        "| run | stderr | frames/s (whole process) |",
        "|---|---|---|",
        *rows,
    ]) + "\n"
