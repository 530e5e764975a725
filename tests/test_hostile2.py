"""Hostile inputs, second round (issue 37): a file that froze the process, peers that stall the web
server or the broker link, files that explode the report or the config. Each ends in a clear message,
the documented exit code or HTTP status, bounded time and bounded memory."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.edge_support import run_edge


@pytest.fixture(scope="module")
def photo() -> bytes:
    return cv2.imencode(".jpg", np.full((240, 320, 3), 120, np.uint8))[1].tobytes()


# ---- 1. a PNM header that backtracked ---------------------------------------------------------------

def test_a_backtracking_pnm_header_in_a_folder_is_skipped_and_the_photo_before_it_kept(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo)
    (folder / "b.ppm").write_bytes(b"P6" + b" " * 40 + b"x")      # 43 bytes: minutes in the old pattern
    (folder / "c.jpg").write_bytes(photo)
    stats = tmp_path / "s.json"
    r = run_edge("--headless", "--source", str(folder), "--log", str(tmp_path / "e.csv"), "--stats-json", str(stats),
                 timeout=90)
    assert r.returncode == 0, r.stderr
    assert "b.ppm" in r.stderr and "Traceback" not in r.stderr
    s = json.loads(stats.read_text())
    assert s["frames"] == 2 and s["corrupt_frames"] == 1
