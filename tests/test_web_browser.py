"""End to end in a real browser: the edge service (python -m fer_edge.edge --web) runs on a real clip, headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright over CDP; no browser download) opens the
live page and the upload page.

FER_SAVE_SCREENSHOTS=1 writes the screenshots to docs/img/web_live.png and docs/img/web_upload.png
(what the README shows), using models/emotion_int8.tflite when it exists, else the tiny test model.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CLIP = "cap13_edit2.mp4"
FACE_FRAME = 100
# The flags of the brief: no GPU, no network chatter, no first-run UI.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SAVE = os.environ.get("FER_SAVE_SCREENSHOTS") == "1"
SHIPPED_MODEL = ROOT / "models" / "emotion_int8.tflite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def css_rgb(label: str) -> str:
    """The palette's colour of ``label`` as the browser's computed style writes it."""
    from fer_edge.common.palette import color_hex
    h = color_hex(label)
    return f"rgb({int(h[1:3], 16)}, {int(h[3:5], 16)}, {int(h[5:7], 16)})"


def shot_path(name: str, tmp_path: Path) -> Path:
    if SAVE:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        return ROOT / "docs" / "img" / name
    return tmp_path / name


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Opens a headless system Chromium context (persistent = our own --user-data-dir)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (requirements-dev.txt)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} missing: run `python tests/system_deps.py` as root (installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        opened = []

        def context(bypass_csp: bool):
            ctx = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
            opened.append(ctx)
            return ctx
        yield context
        for ctx in opened:
            ctx.close()


@pytest.fixture(scope="module")
def browser(chromium):
    """The tests' own probes (wait_for_function, evaluate) are evaluated strings, which the pages'
    Content-Security-Policy forbids, so this context sets it aside; ``strict_browser`` keeps it."""
    return chromium(bypass_csp=True)


@pytest.fixture(scope="module")
def strict_browser(chromium):
    """Chromium with the pages' Content-Security-Policy enforced, as a user's browser does."""
    return chromium(bypass_csp=False)


def test_pages_work_under_their_content_security_policy(strict_browser, service):
    """Selectors run in Playwright's own isolated world, so they need no eval: the page's scripts must
    fill the faces table and load the stream with the policy enforced, and nothing may be blocked."""
    page = strict_browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(service, wait_until="domcontentloaded")
    page.wait_for_selector("#faces tbody tr.face", timeout=30_000)
    page.wait_for_selector("#history-legend span", timeout=30_000)    # the history chart drew
    page.wait_for_timeout(1500)
    box = page.locator("#stream").bounding_box()
    page.goto(service + "upload", wait_until="domcontentloaded")
    page.wait_for_selector("#file", timeout=10_000)
    page.close()
    assert box and box["width"] > 300 and box["height"] > 200
    assert not problems, problems


@pytest.fixture(scope="module")
def service(tiny_tflite, media_dir, tmp_path_factory):
    """python -m fer_edge.edge --web on the looping clip, on a free loopback port; yields its base URL."""
    model = SHIPPED_MODEL if SAVE and SHIPPED_MODEL.is_file() else tiny_tflite
    tmp = tmp_path_factory.mktemp("web_service")
    port = free_port()
    cmd = [sys.executable, "-m", "fer_edge.edge", "--headless", "--web", "--loop", "--model", str(model),
           "--source", str(media_dir / CLIP), "--log", str(tmp / "emotions.csv"),
           "--set", f"web.port={port}", "--set", "web.host=127.0.0.1", "--set", "web.token="]
    log = open(tmp / "service.log", "w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"the edge service exited with {proc.returncode}: {(tmp / 'service.log').read_text()}"
            assert time.monotonic() < deadline, f"no live frames after 90 s: {(tmp / 'service.log').read_text()}"
            try:
                h = httpx.get(url + "api/health", timeout=2).json()
                if h.get("frames"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed after 30 s"
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 0, f"the edge service did not stop cleanly on SIGTERM ({code}): {output}"


def test_live_page_shows_the_annotated_stream_and_the_faces(browser, service, tmp_path):
    from fer_edge.common.labels import LABELS
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(service, wait_until="domcontentloaded")
    page.wait_for_selector("#faces tbody tr.face", timeout=30_000)
    page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30_000)
    page.wait_for_timeout(1000)           # a few more stream frames and one more poll
    page.wait_for_selector("#faces tbody tr.face", timeout=30_000)
    emotion = page.inner_text("#faces tbody tr.face td.emotion").strip().lower()
    assert emotion in LABELS
    assert page.inner_text("#status") == "running"
    assert float(page.inner_text("#fps")) > 0
    png = page.screenshot(path=str(shot_path("web_live.png", tmp_path)))
    box = page.locator("#stream").bounding_box()
    # the faces table shows each emotion in the palette's colour: its swatch and its confidence bar
    shown = page.eval_on_selector_all("#faces tbody tr.face", """rows => rows.map(r => [r.dataset.label,
        getComputedStyle(r.querySelector("td.emotion i.swatch")).backgroundColor,
        getComputedStyle(r.querySelector(".bar span")).backgroundColor])""")
    page.close()
    assert not errors, errors
    assert shown and all(swatch == bar == css_rgb(label) for label, swatch, bar in shown), shown

    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = (int(round(v)) for v in (box["x"], box["y"], box["width"], box["height"]))
    assert w > 300 and h > 200
    view = shot[y:y + h, x:x + w].astype(int)
    assert view.std() > 20, "the stream area of the page is blank"
    # The overlay's face box and class bars are drawn in the palette's colours: visible in the page's image
    # (a JPEG, so near the colours; the saturated ones, as the scene's greys could pass for neutral's).
    from fer_edge.common.palette import EMOTION_COLORS, color_bgr
    near = np.zeros(view.shape[:2], bool)
    for name in EMOTION_COLORS:
        bgr = np.array(color_bgr(name))
        if bgr.max() - bgr.min() > 60:
            near |= np.abs(view - bgr).sum(axis=2) < 60
    assert near.sum() > 200, f"no face box or bars visible in the stream ({near.sum()} pixels of the palette)"


def test_history_panel_draws_the_emotions_of_the_running_loop(browser, service, tmp_path):
    """The live page's history chart, fed by /api/history of the real service, drawn on its canvas."""
    from fer_edge.common.labels import LABEL_SETS
    h = httpx.get(service + "api/history", params={"minutes": 10}, timeout=5).json()
    LABELS = tuple(h["labels"])                  # the tiny test model's seven, or the shipped model's eight
    assert sum(h["frames"]) > 0 and sum(map(sum, h["counts"])) > 0 and LABELS in LABEL_SETS.values()
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(service, wait_until="domcontentloaded")
    page.wait_for_function("document.getElementById('history-note').textContent.includes('face rows')", timeout=30_000)
    note = page.inner_text("#history-note")
    assert any(f"{label} " in note for label in LABELS), note
    legend = page.locator("#history-legend span").all_inner_texts()
    assert [x.strip() for x in legend] == list(LABELS)
    swatches = page.eval_on_selector_all("#history-legend i.swatch", "s => s.map(i => getComputedStyle(i).backgroundColor)")
    assert swatches == [css_rgb(name) for name in LABELS]            # the chart's colours are the palette's
    page.click("#history-range button[data-minutes='60']")
    page.wait_for_function("document.getElementById('history-note').textContent.includes('last 60 min')", timeout=10_000)
    page.click("#history-range button[data-minutes='10']")
    page.wait_for_function("document.getElementById('history-note').textContent.includes('last 10 min')", timeout=10_000)
    png = page.locator(".history").screenshot(path=str(shot_path("web_history.png", tmp_path)))
    page.close()
    assert not errors, errors
    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)
    colored = (shot.max(axis=2) - shot.min(axis=2)) > 60          # the bars are saturated colours
    assert colored.sum() > 300, f"the history chart is empty ({colored.sum()} coloured pixels)"


def test_upload_through_the_page(browser, service, media_dir, tmp_path):
    from fer_edge.common.labels import LABELS
    cap = cv2.VideoCapture(str(media_dir / CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, FACE_FRAME)
    ok, frame = cap.read()
    cap.release()
    assert ok
    photo = tmp_path / "face_photo.jpg"       # the photo as a user would pick it from their disk
    cv2.imwrite(str(photo), cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(service + "upload", wait_until="domcontentloaded")
    page.set_input_files("#file", str(photo))
    page.click("#submit")
    page.wait_for_selector("#faces tbody tr.face", timeout=30_000)
    page.wait_for_function("document.getElementById('result').naturalWidth > 0", timeout=10_000)
    emotion = page.inner_text("#faces tbody tr.face td.emotion").strip().lower()
    assert emotion in LABELS
    assert "face(s) in 800x600" in page.inner_text("#status")
    assert page.evaluate("document.getElementById('result').naturalWidth") == 800
    page.screenshot(path=str(shot_path("web_upload.png", tmp_path)))
    page.close()
    assert not errors, errors


def test_pages_forward_the_token(browser, tiny_tflite, media_dir, tmp_path):
    """With web.token set, a page opened with ?token= passes it on (links, API calls, the upload)."""
    from fer_edge.common.config import load_config
    from fer_edge.edge.pipeline import Pipeline
    from fer_edge.edge.web import start_in_thread
    cfg = load_config(ROOT / "config.yaml", [("edge.model", str(tiny_tflite)), ("web.host", "127.0.0.1"),
                                             ("web.port", free_port()), ("web.token", "t0k3n")])
    server = start_in_thread(cfg, None, Pipeline.from_config(cfg))
    cap = cv2.VideoCapture(str(media_dir / CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, FACE_FRAME)
    ok, frame = cap.read()
    cap.release()
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), frame)
    page = browser.new_page()
    try:
        assert page.goto(server.url + "upload").status == 401
        page.goto(server.url + "?token=t0k3n", wait_until="domcontentloaded")
        page.click("text=Upload a photo to analyse")          # the link carries the token
        page.wait_for_selector("#file")
        page.set_input_files("#file", str(photo))
        page.click("#submit")
        page.wait_for_selector("#faces tbody tr.face", timeout=30_000)
        assert "face(s) in 400x300" in page.inner_text("#status")
    finally:
        page.close()
        server.stop()
