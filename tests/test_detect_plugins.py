"""Detector backends are plugins: a module that registers itself adds its config section and is picked
by ``edge.detector.backend``, without touching any other file; the old flat keys name their new place."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from tests.edge_support import ROOT, edge_env, read_log

# A real backend in a module outside the package: a fixed square at the frame's centre.
PLUGIN = textwrap.dedent('''
    from fer_edge.common.config import F
    from fer_edge.edge.detect.base import register
    from fer_edge.edge.framing import Framing
    from fer_edge.edge.types import Box, Detection

    @register("centre", {"side": F(int, 40, min=8, max=4096)}, framing=Framing(scale=1.0, dx=0.0, dy=0.0))
    class CentreDetector:
        backend = "centre"

        def __init__(self, side, max_faces):
            self.side, self.max_faces = side, max_faces

        @classmethod
        def from_config(cls, det_cfg, own, threads=1):
            return cls(own.side, det_cfg.max_faces)

        def describe(self):
            return f"centre{self.side}"

        def detect(self, image, thorough=True):
            h, w = image.shape[:2]
            return [Detection(Box((w - self.side) // 2, (h - self.side) // 2, self.side, self.side), 1.0, "centre")]

        def scan(self, image):
            return self.detect(image)

        def detect_near(self, image, near):
            return self.detect(image)
''')


def _edge_with_plugin(tmp_path, *sets: str, plugin: bool = True) -> subprocess.CompletedProcess:
    (tmp_path / "centre_plugin.py").write_text(PLUGIN)
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((120, 160, 3), 90, np.uint8))
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
            + ("import centre_plugin; " if plugin else "")
            + "from fer_edge.edge.cli import main; sys.exit(main(sys.argv[1:]))")
    args = ["--headless", "--source", str(photo), "--log", str(tmp_path / "e.csv")]
    for s in sets:
        args += ["--set", s]
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=edge_env(), capture_output=True,
                          text=True, timeout=180)


def test_a_registered_backend_is_chosen_by_config_with_its_own_section(tmp_path):
    r = _edge_with_plugin(tmp_path, "edge.detector.backend=centre", "edge.detector.centre.side=64")
    assert r.returncode == 0, r.stderr
    assert "detector centre64" in r.stdout + r.stderr
    header, rows = read_log(tmp_path / "e.csv")
    assert len(rows) == 1
    row = dict(zip(header, rows[0]))
    assert (row["x"], row["y"], row["w"], row["h"]) == ("48", "28", "64", "64"), row


@pytest.mark.parametrize("sets, plugin, words", [
    (["edge.detector.backend=centre", "edge.detector.centre.side=2"], True,
     ["'edge.detector.centre.side'", "minimum"]),
    (["edge.detector.centre.sidee=20"], True, ["'edge.detector.centre.sidee'", "known keys here: side"]),
    (["edge.detector.backend=centre"], False, ["'edge.detector.backend'", "'centre' is not one of"]),
    (["edge.detector.profile=false"], False, ["'edge.detector.profile' is now 'edge.detector.haar.profile'"]),
])
def test_bad_backend_settings_exit_2_naming_the_key(tmp_path, sets, plugin, words):
    r = _edge_with_plugin(tmp_path, *sets, plugin=plugin)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in err[0], err[0]


def test_old_flat_keys_in_a_config_file_name_their_new_place(tmp_path):
    from fer_edge.common.config import ConfigError, load_config
    for old, value in (("min_score", 0.5), ("profile_every", 2)):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"edge:\n  detector:\n    {old}: {value}\n")
        with pytest.raises(ConfigError, match=rf"'edge\.detector\.{old}' is now 'edge\.detector\.\w+\.{old}'"):
            load_config(cfg)


def test_haar_runs_its_profile_cascades_on_every_profile_every_th_video_scan():
    from fer_edge.common.config import load_config
    from fer_edge.edge.detect import make_detector
    det_cfg = load_config(None, [("edge.detector.haar.profile_every", 3)]).edge.detector
    haar = make_detector(det_cfg)
    seen = []
    haar.detect = lambda image, thorough=True: seen.append(thorough) or []       # record what each scan asks
    for _ in range(7):
        haar.scan(np.zeros((48, 48), np.uint8))
    assert seen == [True, False, False, True, False, False, True]
    assert haar.describe() == "haar+profile"
