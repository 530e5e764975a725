"""The edge's exit code on every path, as the process and as ``--stats-json`` say it: each kind of
failure at start is exit 2 with one line naming the file or key and no summary; a runtime failure is
exit 1; the end of a file is 0. The committed model: no training needed."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.edge_support import ROOT, FakeCamera, run_edge

MODEL = ROOT / "models" / "emotion_int8.tflite"


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "grey.jpg"
    cv2.imwrite(str(path), np.full((120, 160, 3), 128, np.uint8))
    return path


def _bad_contract(tmp: Path) -> tuple[list[str], list[str]]:
    model = tmp / "emotion_int8.tflite"
    shutil.copy(MODEL, model)
    contract = json.loads(MODEL.with_suffix(".json").read_text())
    contract["tflite"]["sha256"] = "0" * 64
    model.with_suffix(".json").write_text(json.dumps(contract))
    return ["--model", str(model)], [str(model), "contract"]


def _junk_video(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "junk.mp4").write_bytes(bytes(range(256)) * 20)
    return ["--source", str(tmp / "junk.mp4")], [str(tmp / "junk.mp4")]


def _port_taken(tmp: Path, held: list) -> tuple[list[str], list[str]]:
    sock = socket.create_server(("127.0.0.1", 0))
    held.append(sock)
    port = sock.getsockname()[1]
    return (["--web", "--set", f"web.port={port}", "--set", "web.host=127.0.0.1", "--set", "web.token="],
            ["web.port", str(port)])


def _unwritable_log(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "file").write_text("a file, not a folder")
    return ["--log", str(tmp / "file" / "e.csv")], [str(tmp / "file" / "e.csv")]


FAILURES = {
    "source missing": lambda tmp, held: (["--source", str(tmp / "nope.mp4")], [str(tmp / "nope.mp4")]),
    "source unreadable": lambda tmp, held: _junk_video(tmp),
    "model missing": lambda tmp, held: (["--model", str(tmp / "none.tflite")], [str(tmp / "none.tflite")]),
    "model against its contract": lambda tmp, held: _bad_contract(tmp),
    "config value": lambda tmp, held: (["--set", "edge.csv.on_error=maybe"], ["edge.csv.on_error"]),
    "config key": lambda tmp, held: (["--set", "edge.detectr.min_size=3"], ["edge.detectr"]),
    "csv path": lambda tmp, held: _unwritable_log(tmp),
    "mqtt password file": lambda tmp, held: (["--set", "mqtt.enabled=true", "--set", "mqtt.password_file=/no/such/pw"],
                                             ["mqtt.password_file", "/no/such/pw"]),
    "mqtt device": lambda tmp, held: (["--set", "mqtt.enabled=true", "--set", "mqtt.device=living room"],
                                      ["mqtt.device"]),
    "web port taken": _port_taken,
    "window without a display": lambda tmp, held: (["--display", "on"], ["edge.display"]),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failure_at_start_exits_2_in_one_line_without_a_summary(kind, photo, tmp_path):
    held: list[socket.socket] = []
    args, words = FAILURES[kind](tmp_path, held)
    stats = tmp_path / "stats.json"
    base = ["--source", str(photo), "--log", str(tmp_path / "e.csv"), "--stats-json", str(stats)]
    if "--display" not in args:
        base.append("--headless")
    try:
        r = run_edge(*base, *args, timeout=120)
    finally:
        for sock in held:
            sock.close()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, (kind, r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (kind, r.stderr)
    assert all(w in lines[0] for w in words), (kind, words, lines[0])
    assert "frames in" not in r.stderr and r.stdout == ""            # no summary, no start line
    s = json.loads(stats.read_text())
    assert s["exit_code"] == 2 and s["frames"] == 0 and s["csv_rows"] == 0, s


def test_a_run_to_the_end_of_its_file_exits_0_in_both(photo, tmp_path):
    stats = tmp_path / "stats.json"
    r = run_edge("--headless", "--source", str(photo), "--log", str(tmp_path / "e.csv"), "--stats-json", str(stats))
    assert r.returncode == 0 and json.loads(stats.read_text())["exit_code"] == 0 and "frames in" in r.stderr, r.stderr


def test_a_camera_gone_for_good_exits_1_in_both(media_dir, tmp_path):
    from fer_edge.common.config import load_config
    from fer_edge.edge.loop import run
    from tests.edge_support import clip_frames
    cam = FakeCamera(clip_frames(media_dir / "cap12_edit.mp4", [100, 300]), fault="die", after=3, open_failures=100)
    cfg = load_config(None, [("edge.log", str(tmp_path / "e.csv")), ("edge.camera.stall_timeout_s", 1.0),
                             ("edge.camera.reconnect_backoff_s", 0.02), ("edge.camera.reconnect_attempts", 2)])
    stats = tmp_path / "stats.json"
    assert run(cfg, source=cam, headless=True, stats_json=stats, quiet=True) == 1
    assert json.loads(stats.read_text())["exit_code"] == 1
