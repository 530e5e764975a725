"""The web view's API through Starlette's test client, and its stream through a real uvicorn server.

Real things throughout: the tiny int8 model converted in the test session, frames of the real
webcam clip cap13_edit2.mp4 (a face photo is made from one of them), the real Pipeline.
"""
from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

import cv2
import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from fer_edge.common.config import Config, load_config
from fer_edge.edge.telemetry import RecentResults, Tally
from fer_edge.edge.types import Frame
from tests.conftest import ROOT

CLIP = "cap13_edit2.mp4"
FACE_FRAME = 100          # a frame of CLIP where the Haar detector finds the face


def clip_frames(media_dir, start: int = 0, count: int = 1) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(media_dir / CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < count:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert frames, f"could not read frames of {media_dir / CLIP}"
    return frames


@pytest.fixture(scope="module")
def face_jpeg(media_dir) -> bytes:
    """A real face photo: frame FACE_FRAME of the clip, upscaled 2x like a phone picture, as JPEG."""
    img = clip_frames(media_dir, FACE_FRAME)[0]
    img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def web_cfg(model, **web) -> Config:
    web = {"host": "127.0.0.1", "token": "", **web}    # whatever config.yaml says: loopback, no token
    overrides = [("edge.model", str(model))] + [(f"web.{k}", v) for k, v in web.items()]
    return load_config(ROOT / "config.yaml", overrides)


@pytest.fixture(scope="module")
def analyzer(tiny_tflite):
    from fer_edge.edge.pipeline import Pipeline
    return Pipeline.from_config(web_cfg(tiny_tflite))


def client(tiny_tflite, analyzer, live=None, **web) -> TestClient:
    from fer_edge.edge.web import create_app
    return TestClient(create_app(web_cfg(tiny_tflite, **web), live, analyzer))


def post_image(c: TestClient, data: bytes, name="face.jpg", ctype="image/jpeg", **kw):
    return c.post("/api/predict", files={"image": (name, data, ctype)}, **kw)


# ---- POST /api/predict ------------------------------------------------------------------------

def test_predict_finds_the_face_in_a_real_photo(tiny_tflite, analyzer, face_jpeg):
    r = post_image(client(tiny_tflite, analyzer), face_jpeg)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["width"], d["height"]) == (800, 600)
    assert len(d["faces"]) >= 1
    face = d["faces"][0]
    labels = tuple(analyzer.labels)
    # named as in the CSV log and MQTT; the 0.8 names repeat them for one release
    assert face["emotion"] in labels and list(face["probabilities"]) == list(labels)
    assert abs(sum(face["probabilities"].values()) - 1.0) < 0.02
    assert face["confidence"] == max(face["probabilities"].values())
    assert (face["label"], face["probs"]) == (face["emotion"], face["probabilities"])
    b = face["box"]
    # The face of the clip sits near the middle: its box (in the 2x photo) covers the image centre.
    assert b["x"] < 400 < b["x"] + b["w"] and b["y"] < 300 < b["y"] + b["h"] and b["w"] >= 150
    annotated = cv2.imdecode(np.frombuffer(base64.b64decode(d["annotated_jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == original.shape
    # The box is drawn: the annotated image differs from the photo along the box's top edge.
    edge_diff = np.abs(annotated[b["y"], b["x"]:b["x"] + b["w"]].astype(int) - original[b["y"], b["x"]:b["x"] + b["w"]])
    assert edge_diff.mean() > 20


def test_predict_a_photo_without_face_returns_no_faces(tiny_tflite, analyzer):
    blank = np.full((300, 400, 3), 200, np.uint8)
    r = post_image(client(tiny_tflite, analyzer), cv2.imencode(".png", blank)[1].tobytes(), "wall.png", "image/png")
    assert r.status_code == 200 and r.json()["faces"] == []


def test_non_image_gets_415_with_a_message(tiny_tflite, analyzer):
    c = client(tiny_tflite, analyzer)
    r = post_image(c, b"%PDF-1.4 definitely not a photo", "notes.pdf", "application/pdf")
    assert r.status_code == 415 and "not an image" in r.json()["error"] and "JPEG" in r.json()["error"]
    r = c.post("/api/predict", content=b"\xff\xd8 raw bytes", headers={"content-type": "image/jpeg"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]


def test_missing_image_field_gets_400(tiny_tflite, analyzer):
    r = client(tiny_tflite, analyzer).post("/api/predict", files={"photo": ("a.jpg", b"123", "image/jpeg")})
    assert r.status_code == 400 and "'image'" in r.json()["error"]


def test_oversized_upload_gets_413_by_content_length_and_by_counting(tiny_tflite, analyzer, face_jpeg):
    limit_mb = 0.02                                # 20,971 bytes; face_jpeg is larger
    assert len(face_jpeg) > limit_mb * 2**20
    c = client(tiny_tflite, analyzer, max_upload_mb=limit_mb)
    r = post_image(c, face_jpeg)
    assert r.status_code == 413 and "web.max_upload_mb" in r.json()["error"]

    # No Content-Length (chunked): the streamed bytes are counted.
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode()

    def chunks():
        yield head
        for i in range(0, len(face_jpeg), 8192):
            yield face_jpeg[i:i + 8192]
        yield f"\r\n--{boundary}--\r\n".encode()

    r = c.post("/api/predict", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    # A small photo under the same limit passes.
    small = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), 1)[::4, ::4])[1].tobytes()
    assert post_image(c, small).status_code == 200


def test_large_upload_never_touches_the_disk(tiny_tflite, analyzer, face_jpeg, monkeypatch):
    """Starlette spools uploads over 1 MB to a temporary file; ours must stay in memory."""
    big = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    png = cv2.imencode(".png", cv2.resize(big, (1600, 1200)), [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()
    assert len(png) > 3 * 2**20
    opened = []
    real = tempfile.TemporaryFile

    def spy(*a, **kw):                 # SpooledTemporaryFile.rollover() goes through here
        opened.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", spy)
    r = post_image(client(tiny_tflite, analyzer), png, "big.png", "image/png")
    assert r.status_code == 200 and len(r.json()["faces"]) >= 1
    assert opened == [], "the upload was written to a temporary file"


# ---- token -------------------------------------------------------------------------------------

ENDPOINTS = [("GET", "/"), ("GET", "/upload"), ("GET", "/api/latest"), ("GET", "/api/health"),
             ("GET", "/metrics"), ("GET", "/api/history"), ("GET", "/stream.mjpg"), ("POST", "/api/predict"), ("GET", "/no-such-page")]


def test_token_is_required_on_every_endpoint(tiny_tflite, analyzer, face_jpeg):
    c = client(tiny_tflite, analyzer, token="s3cret-token")
    for method, path in ENDPOINTS:
        for kw in ({}, {"headers": {"Authorization": "Bearer wrong"}}, {"params": {"token": "s3cret-tokeX"}}):
            r = c.request(method, path, **kw)
            assert r.status_code == 401, (method, path, kw, r.status_code)
            assert "token" in r.json()["error"] and r.headers["www-authenticate"].startswith("Bearer")
    assert c.get("/", params={"token": "s3cret-token"}).status_code == 200
    assert c.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    r = post_image(c, face_jpeg, headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200 and r.json()["faces"]
    assert c.get("/api/health").status_code == 401


def test_safety_headers(tiny_tflite, analyzer):
    r = client(tiny_tflite, analyzer).get("/upload")
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"


# ---- without a live loop (make web) -------------------------------------------------------------

def test_without_live_loop_the_page_points_to_upload(tiny_tflite, analyzer):
    c = client(tiny_tflite, analyzer)
    page = c.get("/").text
    assert "No live stream is running" in page and 'href="/upload"' in page
    assert "<form" in c.get("/upload").text and 'name="image"' in c.get("/upload").text
    assert c.get("/stream.mjpg").status_code == 503
    assert c.get("/api/latest").json()["live"] is False
    h = c.get("/api/health").json()
    assert h["status"] == "ok" and h["live"] is False and h["labels"] == list(analyzer.labels)
    # which model the device runs: a fleet checks this after an upgrade
    contract = json.loads(tiny_tflite.with_suffix(".json").read_text())
    assert h["model"] == {"file": tiny_tflite.name, "sha256": contract["tflite"]["sha256"][:12], "precision": "int8",
                          "mirror_inside": False, "run": contract["source"]["run_dir"],
                          "test_accuracy": contract["metrics"]["int8"]["accuracy"]}


# ---- with a live loop ---------------------------------------------------------------------------

def feed(live: RecentResults, pipeline, frames, fps=20.0, tally: Tally | None = None):
    """Write real pipeline results for ``frames`` the way the edge loop does, counting them in ``tally``;
    (last result, faces seen)."""
    faces = 0
    for i, img in enumerate(frames):
        res = pipeline.process(Frame(img, i, CLIP, datetime.now(timezone.utc)))
        live.write(replace(res, fps=fps))
        if tally is not None:
            tally.frame(len(res.faces), res.timings_ms)
        faces += len(res.faces)
    return res, faces


def test_history_counts_each_emotion_of_the_live_loop(tiny_tflite, analyzer, media_dir):
    """/api/history from real pipeline results: per-second counts of each emotion, bounded ring."""
    from fer_edge.edge.pipeline import Pipeline
    loop_pipeline = Pipeline.from_config(web_cfg(tiny_tflite))
    live = RecentResults(loop_pipeline.labels, history_s=600)
    c = client(tiny_tflite, analyzer, live)
    _, n_faces = feed(live, loop_pipeline, clip_frames(media_dir, FACE_FRAME, 6))
    h = c.get("/api/history", params={"minutes": 2}).json()
    assert h["labels"] == list(loop_pipeline.labels) and h["step_s"] == 1 and len(h["frames"]) == 120
    assert sum(h["frames"]) == 6 and sum(map(sum, h["counts"])) == n_faces >= 6
    assert h["end_unix"] - h["start_unix"] == 120 and all(len(c) == len(h["labels"]) for c in h["counts"])
    assert h["start_unix"] <= h["running_since_unix"] <= h["end_unix"]
    h = c.get("/api/history", params={"minutes": 10}).json()
    assert h["step_s"] == 3 and len(h["frames"]) == 200 and sum(h["frames"]) == 6
    for bad in ("0", "11", "x"):
        r = c.get("/api/history", params={"minutes": bad})
        assert r.status_code == 400 and "web.history_minutes" in r.json()["error"]
    assert client(tiny_tflite, analyzer, RecentResults(loop_pipeline.labels)).get("/api/history").status_code == 404
    # the ring holds its seconds whatever the uptime: a second that comes round again starts from zero
    ring = live.history
    assert ring.counts.shape == (600, len(loop_pipeline.labels) + 1)
    ring.add(1_000_000.5, ["happy"])
    ring.add(1_000_600.2, ["sad", "sad"])
    s = ring.series(600, now=1_000_600)
    assert sum(s["frames"]) == 1 and sum(map(sum, s["counts"])) == 2


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? [-+0-9.eE]+$')


def test_latest_health_and_metrics_follow_the_live_loop(tiny_tflite, analyzer, media_dir):
    from fer_edge.edge.pipeline import Pipeline
    loop_pipeline = Pipeline.from_config(web_cfg(tiny_tflite))
    tally = Tally()                # the loop's counters; the others come from the capture thread and the sinks
    live = RecentResults(loop_pipeline.labels, metrics=lambda: tally.metrics(
        {"dropped_frames": 3}, {"mqtt_sent": 7, "mqtt_dropped": 2, "mqtt_reconnects": 0}))
    c = client(tiny_tflite, analyzer, live)
    assert c.get("/api/latest").json()["frame"] is None
    last, n_faces = feed(live, loop_pipeline, clip_frames(media_dir, FACE_FRAME, 5), tally=tally)
    tally.add("camera_reconnects")
    d = c.get("/api/latest").json()
    assert d["live"] is True and d["fps"] == 20.0 and d["frame"]["index"] == 4
    assert (d["frame"]["width"], d["frame"]["height"]) == (400, 300)
    assert [f["emotion"] for f in d["faces"]] == [f.label for f in last.faces] and d["faces"]
    assert all(f["label"] == f["emotion"] and f["probs"] == f["probabilities"] for f in d["faces"])
    assert "Live" in c.get("/").text and "/stream.mjpg" in c.get("/").text
    assert c.get("/api/health").json()["frames"] == 5

    text = c.get("/metrics").text
    assert c.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) fer_\w+ .+$", line), line
            continue
        assert PROM_LINE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples["fer_frames_total"] == 5
    assert samples["fer_faces_total"] == n_faces >= 5
    assert samples["fer_dropped_frames_total"] == 3 and samples["fer_camera_reconnects_total"] == 1
    assert samples["fer_mqtt_sent_total"] == 7 and samples["fer_mqtt_dropped_total"] == 2
    assert samples["fer_mqtt_reconnects_total"] == 0
    for stage in ("detect", "classify"):
        assert samples[f'fer_stage_latency_seconds_count{{stage="{stage}"}}'] == 5
        assert samples[f'fer_stage_latency_seconds_sum{{stage="{stage}"}}'] > 0
    assert live.jpeg_encodes == 0, "nothing may be JPEG-encoded while nobody watches the stream"


def test_health_reports_a_stalled_loop(tiny_tflite, analyzer, media_dir):
    from datetime import timedelta
    from fer_edge.edge.types import FrameResult
    live = RecentResults(tuple(analyzer.labels))
    c = client(tiny_tflite, analyzer, live)
    img = clip_frames(media_dir, FACE_FRAME)[0]
    live.write(replace(FrameResult(Frame(img, 0, CLIP, datetime.now(timezone.utc)), ()), fps=25.0))
    assert c.get("/api/health").json()["status"] == "ok"
    stale = datetime.now(timezone.utc) - timedelta(seconds=60)     # edge.camera.stall_timeout_s is 5
    live.write(replace(FrameResult(Frame(img, 1, CLIP, stale), ()), fps=25.0))
    r = c.get("/api/health")
    assert r.status_code == 503 and r.json()["status"] == "stalled" and r.json()["last_frame_age_s"] >= 59


def test_latest_jpeg_encodes_once_per_new_frame_and_at_most_max_fps(media_dir):
    from fer_edge.edge.types import FrameResult
    live = RecentResults(("a", "b"))
    assert live.latest_jpeg(10.0) == (0, None)
    frames = clip_frames(media_dir, FACE_FRAME, 3)
    live.write(replace(FrameResult(Frame(frames[0], 0, CLIP, datetime.now(timezone.utc)), ()), fps=25.0))
    seq, jpeg = live.latest_jpeg(10.0)
    assert seq == 1 and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (300, 400, 3)
    for _ in range(5):                   # many watchers asking for the same frame: one encode
        assert live.latest_jpeg(10.0) == (seq, jpeg)
    live.write(replace(FrameResult(Frame(frames[1], 1, CLIP, datetime.now(timezone.utc)), ()), fps=25.0))
    assert live.latest_jpeg(0.5)[0] == 1, "a new frame within 1/max_fps must get the cached JPEG"
    assert live.jpeg_encodes == 1
    time.sleep(0.011)                    # past 1/max_fps of the first encode (monotonic clock): encode again
    assert live.latest_jpeg(100.0)[0] == 2 and live.jpeg_encodes == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


def read_mjpeg(url: str, seconds: float, out: list) -> None:
    """Read the MJPEG stream for ``seconds``; append each JPEG part to ``out``."""
    buf = b""
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", url, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("multipart/x-mixed-replace")
        for chunk in r.iter_bytes():
            if time.monotonic() > deadline:
                return
            buf += chunk
            while True:
                m = re.search(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", buf)
                if not m or len(buf) < m.end() + int(m.group(1)):
                    break
                out.append(buf[m.end():m.end() + int(m.group(1))])
                buf = buf[m.end() + int(m.group(1)):]


def test_stream_is_shared_lazy_and_survives_a_stalled_client(tiny_tflite, analyzer, media_dir):
    from fer_edge.edge.pipeline import Pipeline
    from fer_edge.edge.web import start_in_thread
    loop_pipeline = Pipeline.from_config(web_cfg(tiny_tflite))
    frames = clip_frames(media_dir, FACE_FRAME, 40)
    results = [loop_pipeline.process(Frame(f, i, CLIP, datetime.now(timezone.utc))) for i, f in enumerate(frames)]
    live = RecentResults(loop_pipeline.labels)
    stop = threading.Event()

    def loop():                         # replays the real results at 25 fps, like the edge loop would
        i = 0
        while not stop.is_set():
            live.write(replace(results[i % len(results)], fps=25.0))
            i += 1
            time.sleep(0.04)

    feeder = threading.Thread(target=loop, daemon=True)
    feeder.start()
    cfg = web_cfg(tiny_tflite, port=free_port(), stream_fps=5.0)
    server = start_in_thread(cfg, live, analyzer)
    try:
        time.sleep(0.5)
        assert live.jpeg_encodes == 0, "encoded although nobody watches"
        # A stalled client: connects, asks for the stream, never reads a byte.
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got: list[list[bytes]] = [[] for _ in range(3)]
        readers = [threading.Thread(target=read_mjpeg, args=(f"{server.url}stream.mjpg", 3.0, g)) for g in got]
        e0, ta = live.jpeg_encodes, time.monotonic()
        for t in readers:
            t.start()
        for t in readers:
            t.join(20)
        encodes, tb = live.jpeg_encodes - e0, time.monotonic()
        for parts in got:
            # 5 fps for 3 s: about 15 frames each (a loaded 2-core CI box delivers fewer; never more).
            assert 5 <= len(parts) <= 17, [len(p) for p in got]
            img = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == (300, 400, 3)
        # One encode serves every watcher: far fewer encodes than frames delivered in total.
        delivered = sum(len(p) for p in got)
        assert encodes <= 5.0 * (tb - ta) + 2 and encodes < delivered, (encodes, tb - ta, delivered)
        # The readers hung up: they are no longer counted; the stalled client still is.
        assert wait_for(lambda: live.watchers == 1), f"{live.watchers} watchers: only the stalled client is left"
        t0 = time.monotonic()
    finally:
        server.stop()                  # with the stalled client still connected
        stop.set()
    assert time.monotonic() - t0 < 12, "stop() hung on a stalled stream client"
    stalled.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}api/health", timeout=2)


def test_start_reports_a_busy_port(tiny_tflite, analyzer):
    from fer_edge.edge.web import WebError, start_in_thread
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(WebError, match="web.port"):
            start_in_thread(web_cfg(tiny_tflite, port=port), RecentResults(), analyzer)


# ---- python -m fer_edge.edge.web ---------------------------------------------------------------------------

def test_cli_serves_the_upload_page_alone(tiny_tflite, face_jpeg):
    port = free_port()
    cmd = [sys.executable, "-m", "fer_edge.edge.web", "--model", str(tiny_tflite), "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url + "api/health", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
                time.sleep(0.3)
        assert r.json()["live"] is False
        assert "No live stream is running" in httpx.get(url).text
        r = httpx.post(url + "api/predict", files={"image": ("face.jpg", face_jpeg, "image/jpeg")}, timeout=30)
        assert r.status_code == 200 and r.json()["faces"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert f"127.0.0.1:{port}/upload" in out


def test_cli_config_errors_exit_2_naming_the_key():
    r = subprocess.run([sys.executable, "-m", "fer_edge.edge.web", "--set", "web.port=99999"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "web.port" in r.stderr
    r = subprocess.run([sys.executable, "-m", "fer_edge.edge.web", "--model", "no/such/model.tflite"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no/such/model.tflite" in r.stderr
