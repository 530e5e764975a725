"""Both label sets through the edge: FER-2013's seven and FER+'s eight (contempt). Every consumer takes
the labels from the model's contract: the CSV's prob_* columns, the steady label, the report, the web
view's history and upload answer, MQTT events, and the overlay. Real converted models, a real clip."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest

from fer_edge.common.labels import FERPLUS_LABELS, LABELS
from tests.edge_support import ROOT, clip_frames, read_log, run_edge

CLIP = "cap13_edit2.mp4"
MODELS = {"fer2013": ("tiny_tflite", LABELS), "ferplus": ("tiny_ferplus_tflite", FERPLUS_LABELS)}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    fixture, labels = MODELS[request.param]
    return request.getfixturevalue(fixture), labels


def test_the_log_and_the_report_carry_the_models_labels(model, media_dir, tmp_path):
    path, labels = model
    log = tmp_path / "emotions.csv"
    r = run_edge("--headless", "--source", str(media_dir / CLIP), "--model", str(path), "--log", str(log),
                 "--max-frames", "60")
    assert r.returncode == 0, r.stderr
    header, rows = read_log(log)
    assert header[-len(labels):] == [f"prob_{n}" for n in labels] and len(rows) >= 50
    e, first = header.index("emotion"), len(header) - len(labels)
    for row in rows:
        assert row[e] in labels and abs(sum(map(float, row[first:])) - 1) < 0.01
    out = tmp_path / "report"
    rep = subprocess.run([sys.executable, "-m", "fer_edge.edge.report", str(log), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    summary = (out / "summary.md").read_text()
    assert all(f"| {n} |" in summary for n in {row[e] for row in rows})


def test_web_history_and_upload_answer_in_the_models_labels(model, media_dir):
    import cv2
    from starlette.testclient import TestClient

    from fer_edge.common.config import load_config
    from fer_edge.edge.pipeline import Pipeline
    from fer_edge.edge.telemetry import RecentResults
    from fer_edge.edge.types import Frame
    from fer_edge.edge.web import create_app
    path, labels = model
    cfg = load_config(ROOT / "config.yaml", [("edge.model", str(path)), ("web.token", ""), ("web.host", "127.0.0.1")])
    loop, upload = Pipeline.from_config(cfg), Pipeline.from_config(cfg)
    live = RecentResults(loop.labels, history_s=600)
    frames = clip_frames(media_dir / CLIP, list(range(100, 106)))
    for i, img in enumerate(frames):
        live.write(loop.process(Frame(img, i, CLIP, datetime.now(timezone.utc))))
    c = TestClient(create_app(cfg, live, upload))
    h = c.get("/api/history", params={"minutes": 2}).json()
    assert h["labels"] == list(labels) and all(len(row) == len(labels) for row in h["counts"])
    photo = cv2.imencode(".jpg", cv2.resize(frames[0], None, fx=2, fy=2))[1].tobytes()
    r = c.post("/api/predict", files={"image": ("face.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert faces and all(set(f["probs"]) == set(labels) for f in faces)


def test_the_overlay_draws_one_bar_per_label(model, media_dir):
    from fer_edge.edge.overlay import draw
    from fer_edge.edge.pipeline import Pipeline
    from fer_edge.edge.types import Frame
    from fer_edge.common.config import load_config
    path, labels = model
    pipe = Pipeline.from_config(load_config(ROOT / "config.yaml", [("edge.model", str(path))]))
    img = clip_frames(media_dir / CLIP, [100])[0]
    res = pipe.process(Frame(img, 0, CLIP, datetime.now(timezone.utc), still=True))
    assert res.faces
    out = draw(img, res, pipe.labels)
    changed = np.flatnonzero(np.any(out != img, axis=(1, 2)))
    # the bars stack up from the bottom edge: one row per label, so eight labels reach higher than seven
    assert out.shape[0] - changed[changed > out.shape[0] // 2].min() >= len(labels) * 16


def test_mqtt_events_name_the_models_labels(model, media_dir, tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (requirements-edge.txt)")
    from bench.mqtt_broker import MOSQUITTO, Broker, Listener
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed (tests/system_deps.py installs it)")
    path, labels = model
    broker = Broker(tmp_path).start()
    try:
        lis = Listener(broker.port)
        r = run_edge("--headless", "--source", str(media_dir / CLIP), "--model", str(path), "--log",
                     str(tmp_path / "e.csv"), "--max-frames", "60", "--set", "mqtt.enabled=true", "--set",
                     "mqtt.host=127.0.0.1", "--set", f"mqtt.port={broker.port}", "--set", "mqtt.device=labels")
        assert r.returncode == 0, r.stderr
        lis.wait("fer/labels/available", "offline", timeout=10)
        events = [json.loads(p) for p in lis.on("fer/labels/events")]
        lis.close()
    finally:
        broker.stop()
    assert events and all(list(e["probabilities"]) == list(labels) and e["emotion"] in labels for e in events)
