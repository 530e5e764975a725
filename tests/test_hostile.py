"""Hostile and broken inputs: decompression bombs, a flood of uploads, cross-site posts, NaN in the
config, broken config files, credentials in a source URL. Each ends in a clear message and the
documented exit code or HTTP status, with bounded memory."""
from __future__ import annotations

import base64
import hashlib
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.edge_support import ROOT, edge_env, read_log, run_edge


def png_bomb(w: int, h: int) -> bytes:
    """A real, valid PNG of w x h black gray pixels: tiny on disk, w*h bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * w
    body = b"".join(raw.compress(row) for _ in range(h)) + raw.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(20000, 20000)          # 400 MP, ~400 KB


# ---- image sizes from headers --------------------------------------------------------------------

def test_image_size_is_read_from_every_supported_header(tmp_path, bomb):
    from fer_edge.edge.imagesize import ImageTooLarge, check_size, image_size
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    for ext in (".jpg", ".png", ".webp", ".bmp", ".tif", ".ppm", ".pgm"):
        ok, buf = cv2.imencode(ext, img if ext != ".pgm" else img[:, :, 0])
        assert ok, ext
        assert image_size(buf.tobytes()) == (53, 37), ext
    assert image_size(bomb) == (20000, 20000)
    with pytest.raises(ImageTooLarge, match=r"20000x20000.*edge.max_image_mp"):
        check_size(bomb, 40, "x.png")
    assert image_size(b"not an image at all") is None
    with pytest.raises(ValueError, match="header"):
        check_size(b"GIF89a", 40, "x.gif")


# ---- the web API ------------------------------------------------------------------------------------

def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(key)


def start_web(model: Path, *args: str, **popen) -> tuple[str, subprocess.Popen]:
    """A real `python -m fer_edge.edge.web` on a free loopback port (``args`` added), once it answers."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "fer_edge.edge.web", "--model", str(model), "--port", str(port), *args],
                            cwd=ROOT, env=edge_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "api/health", timeout=2)
            return url, proc
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, "web server did not start"
            time.sleep(0.3)


def stop_web(proc: subprocess.Popen) -> str:
    """Terminate the server; its output."""
    proc.terminate()
    return proc.communicate(timeout=15)[0]


@pytest.fixture(scope="module")
def server(tiny_tflite):
    url, proc = start_web(tiny_tflite)
    yield url, proc
    stop_web(proc)


@pytest.fixture(scope="module")
def photo() -> bytes:
    img = np.full((240, 320, 3), 120, np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_a_decompression_bomb_upload_is_refused_fast_with_bounded_memory(server, bomb, photo):
    url, proc = server
    assert httpx.post(url + "api/predict", files={"image": ("ok.jpg", photo, "image/jpeg")}, timeout=30).status_code == 200
    before = _vm(proc.pid, "VmHWM")
    for _ in range(3):
        t0 = time.monotonic()
        r = httpx.post(url + "api/predict", files={"image": ("bomb.png", bomb, "image/png")}, timeout=30)
        assert time.monotonic() - t0 < 5.0              # refused from the header; decoding would take far longer
        assert r.status_code == 413 and "20000x20000" in r.json()["error"] and "edge.max_image_mp" in r.json()["error"]
    assert _vm(proc.pid, "VmHWM") - before < 100, "the bomb was decoded"
    assert httpx.post(url + "api/predict", files={"image": ("ok.jpg", photo, "image/jpeg")}, timeout=30).status_code == 200


def test_concurrent_uploads_are_bounded_and_busy_ones_get_503(server, photo):
    url, _ = server
    big = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (1500, 2000, 3), np.uint8))[1].tobytes()
    codes: list[int] = []
    retry: list[str | None] = []

    def post():
        r = httpx.post(url + "api/predict", files={"image": ("big.png", big, "image/png")}, timeout=60)
        codes.append(r.status_code)
        retry.append(r.headers.get("retry-after"))
    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {200, 503} and codes.count(200) >= 2 and 503 in codes, codes
    assert all(ra == "1" for c, ra in zip(codes, retry) if c == 503)
    assert httpx.post(url + "api/predict", files={"image": ("ok.jpg", photo, "image/jpeg")}, timeout=30).status_code == 200


def test_a_post_from_another_web_site_is_refused(server, photo):
    url, _ = server
    files = {"image": ("ok.jpg", photo, "image/jpeg")}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = httpx.post(url + "api/predict", files=files, headers=headers, timeout=30)
        assert r.status_code == 403 and "refused" in r.json()["error"], headers
    own = url.rstrip("/")
    r = httpx.post(url + "api/predict", files=files, headers={"Origin": own, "Sec-Fetch-Site": "same-origin"}, timeout=30)
    assert r.status_code == 200


# ---- image folders ----------------------------------------------------------------------------------

def test_a_bomb_in_an_image_folder_is_skipped_and_counted(tmp_path, bomb, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo)
    (folder / "b_bomb.png").write_bytes(bomb)
    (folder / "c.jpg").write_bytes(photo)
    stats = tmp_path / "s.json"
    r = run_edge("--headless", "--source", str(folder), "--log", str(tmp_path / "e.csv"), "--stats-json", str(stats),
                 "--set", "edge.max_image_mp=40")
    assert r.returncode == 0, r.stderr
    assert "b_bomb.png is 20000x20000" in r.stderr and "Traceback" not in r.stderr
    import json
    s = json.loads(stats.read_text())
    assert s["frames"] == 2 and s["corrupt_frames"] == 1 and s["peak_rss_mb"] < 300


# ---- config -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["edge.smoothing.alpha=.nan", "edge.detector.margin=.inf",
                                     "edge.detector.haar.scale_factor=.nan", "web.max_upload_mb=-.inf"])
def test_nan_and_infinity_are_refused_naming_the_key(setting, tmp_path):
    r = run_edge("--headless", "--source", str(tmp_path), "--set", setting)
    key = setting.split("=")[0]
    assert r.returncode == 2 and f"'{key}'" in r.stderr and "finite" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("content,words", [
    (b"- 1\n- 2\n", ["mapping", "list"]),
    (b"42\n", ["mapping", "int"]),
    ("edge:\n  threads: 1\nedge:\n  threads: 2\n".encode(), ["'edge'", "twice", "lines 1 and 3"]),
    ("edge:\n  threads: 1\n".encode("utf-16"), ["UTF-8"]),
    (bytes(range(256)), ["UTF-8"]),
])
def test_broken_config_files_exit_2_with_one_line(content, words, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    for module in ("fer_edge.edge", "fer_edge.train", "fer_edge.convert"):
        r = subprocess.run([sys.executable, "-m", module, "--config", str(cfg)], cwd=ROOT, env=edge_env(),
                           capture_output=True, text=True, timeout=120)
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1 and str(cfg) in err[0], (module, r.stderr)
        assert all(w in err[0] for w in words), (module, err)


# ---- credentials in a source URL ----------------------------------------------------------------------

def test_source_url_credentials_never_reach_log_messages_or_status():
    from fer_edge.edge.sources import OpenCvSource, SourceError
    src = OpenCvSource("http://admin:s3cret@127.0.0.1:9/video?token=abc&res=hd", live=True)
    assert "s3cret" not in src.name and "abc" not in src.name and "res=hd" in src.name
    with pytest.raises(SourceError) as exc:
        src.open()                                  # nothing listens on port 9: the open fails
    assert "s3cret" not in str(exc.value) and "127.0.0.1:9" in str(exc.value)


# ---- small ones --------------------------------------------------------------------------------------

def test_a_non_ascii_token_is_refused_at_start():
    r = subprocess.run([sys.executable, "-m", "fer_edge.edge.web", "--set", "web.token=grüße"], cwd=ROOT, env=edge_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "'web.token'" in r.stderr and "ASCII" in r.stderr


def test_a_non_utf8_contract_is_named(tiny_tflite, tmp_path):
    import shutil
    from fer_edge.common.contract import ContractError, load_contract
    m = tmp_path / "emotion_int8.tflite"
    shutil.copy(tiny_tflite, m)
    m.with_suffix(".json").write_bytes(b"\xff\xfe{\x00}\x00")
    with pytest.raises(ContractError, match="emotion_int8.json: not UTF-8"):
        load_contract(m)


def test_pages_carry_a_content_security_policy(server):
    """Only the pages' own inline blocks may run, named by hash: injected markup cannot."""
    url, _ = server
    page = httpx.get(url + "upload", timeout=10)
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and "unsafe" not in csp
    for kind in ("script", "style"):
        body = re.search(rf"<{kind}>(.*?)</{kind}>", page.text, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in directives[f"{kind}-src"].split()
    assert httpx.get(url + "api/health", timeout=10).headers["content-security-policy"] == csp


def test_listening_on_the_network_without_a_token_warns(tiny_tflite):
    _, proc = start_web(tiny_tflite, "--host", "0.0.0.0")
    out = stop_web(proc)
    assert "warning: the web view listens on 0.0.0.0" in out and "web.token" in out


def test_float_and_16_bit_images_keep_their_brightness(tmp_path):
    from fer_edge.edge.sources import ImageSource
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    cv2.imwrite(str(tmp_path / "a_float.tif"), ramp)                       # float32 in 0..1
    cv2.imwrite(str(tmp_path / "b_16bit_low.png"), (ramp * 255).astype(np.uint16))   # 16-bit holding 0..255
    cv2.imwrite(str(tmp_path / "c_16bit_full.png"), (ramp * 65535).astype(np.uint16))
    src = ImageSource(tmp_path)
    src.open()
    for _ in range(3):
        g = src.read()
        img = g.image if g.image.ndim == 2 else g.image[:, :, 0]
        assert img.dtype == np.uint8 and img[:, -1].min() >= 250 and img[:, 0].max() <= 5, (g.source, img.max())


# ---- a damaged video -------------------------------------------------------------------------------

def test_a_damaged_stretch_of_a_video_is_read_past_and_reported(media_dir, tmp_path):
    data = bytearray((media_dir / "franck.mp4").read_bytes())
    at = len(data) // 4
    data[at:at + 40_000] = bytes(40_000)             # 40 KB of zeros a quarter into the file
    clip = tmp_path / "damaged.mp4"
    clip.write_bytes(bytes(data))
    stats = tmp_path / "s.json"
    # the damage starts near frame 1,217: 2,000 frames read through it and on
    r = run_edge("--headless", "--source", str(clip), "--log", str(tmp_path / "e.csv"), "--stats-json", str(stats),
                 "--max-frames", "2000", timeout=600)
    import json
    s = json.loads(stats.read_text())
    assert r.returncode == 0 and s["frames"] == 2000 and s["corrupt_frames"] > 0, (s, r.stderr[-500:])
    assert "unreadable (a damaged stretch of the file); reading on" in r.stderr and "failed or gave unusable frames" in r.stderr
    # More unreadable frames in a row than edge.max_bad_frames allows: exit 1, naming the key.
    r = run_edge("--headless", "--source", str(clip), "--log", str(tmp_path / "e2.csv"), "--set", "edge.max_bad_frames=10",
                 timeout=600)
    assert r.returncode == 1 and "edge.max_bad_frames" in r.stderr and "Traceback" not in r.stderr


def test_a_read_only_output_dir_exits_2_for_convert(tiny_keras_model, fer_root, tmp_path):
    import os
    if os.geteuid() == 0:
        # root writes anyway: make the output path a file, which no user can create a folder in
        out = tmp_path / "not_a_dir"
        out.write_text("")
        out = out / "models"
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    r = subprocess.run([sys.executable, "-m", "fer_edge.convert", "--model", str(tiny_keras_model), "--set",
                        f"convert.output_dir={out}", "--set", f"data.root={fer_root}", "--set", "data.max_per_class=20",
                        "--set", "convert.calibration_size=20"],
                       cwd=ROOT, env=edge_env(), capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr and "convert.output_dir" in err[-1], r.stderr[-800:]


def test_sigterm_while_a_network_camera_does_not_answer_exits_within_5_s(tmp_path):
    """A real TCP listener that accepts and never answers: OpenCV's open blocks on it."""
    import signal
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held: list = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    threading.Thread(target=accept, daemon=True).start()
    try:
        p = subprocess.Popen([sys.executable, "-m", "fer_edge.edge", "--headless", "--source", f"http://127.0.0.1:{port}/video",
                              "--log", str(tmp_path / "e.csv")], cwd=ROOT, env=edge_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not held and time.monotonic() < deadline:      # until OpenCV has connected and waits
            time.sleep(0.1)
        assert held, "the edge never connected to the silent camera"
        time.sleep(1.0)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        stop.set()
        srv.close()
        for c in held:
            c.close()
    assert p.returncode == 0 and took < 5.0, (p.returncode, took, err)
    assert "stopping before" in err and "Traceback" not in err


def test_copytruncate_rotation_gets_a_header_again(tmp_path):
    import os
    from datetime import datetime, timezone
    from fer_edge.common.labels import LABELS
    from fer_edge.edge.csvlog import CsvLog
    from fer_edge.edge.types import Box, Face, Frame, FrameResult
    p = np.full(len(LABELS), 1.0 / len(LABELS))
    res = FrameResult(Frame(np.zeros((4, 4), np.uint8), 0, "cam", datetime.now(timezone.utc)),
                      (Face(0, Box(1, 2, 30, 30), p, "happy", float(p[3])),))
    path = tmp_path / "e.csv"
    log = CsvLog(path, LABELS, fsync="never").open()
    assert log.write(res) == 1
    os.truncate(path, 0)                     # what logrotate's copytruncate does
    assert log.write(res) == 1 and log.write(res) == 1
    log.close()
    header, rows = read_log(path)
    assert header[0] == "timestamp" and len(rows) == 2


def test_a_client_that_disconnects_mid_upload_costs_one_line(tiny_tflite):
    import socket
    url, proc = start_web(tiny_tflite)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                      b"boundary=x\r\nContent-Length: 500000\r\n\r\n--x\r\n" + b"a" * 20000)
            time.sleep(0.5)
        time.sleep(1.0)
        assert httpx.get(url + "api/health", timeout=5).status_code == 200
    finally:
        out = stop_web(proc)
    assert "abandoned by the client" in out and "Traceback" not in out, out


def test_a_loopback_server_refuses_other_host_names(server):
    """DNS rebinding: a site's own name pointed at 127.0.0.1 still sends that name as Host."""
    url, _ = server
    r = httpx.get(url + "api/health", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 403 and "evil.example" in r.json()["error"]
    port = url.rsplit(":", 1)[1].strip("/")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert httpx.get(url + "api/health", headers={"Host": host}, timeout=10).status_code == 200, host
