"""An upgrade over an edited /etc/fer-edge/config.yaml of a version before the detector plugins (its
flat edge.detector keys are refused by this one): install.sh moves those keys into their sections,
edits and comments kept and the file before as config.yaml.bak, and the service's config loads; a
migrated config this version still refuses stops the install with the file left as it was."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.test_config_migrate import OLD
from tests.test_install import in_use, install, skip_offline, wheel  # noqa: F401 (wheel: a fixture)


@pytest.fixture(scope="module")
def old_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fakeroot")
    (root / "etc/fer-edge").mkdir(parents=True)
    return root


def test_upgrade_moves_the_flat_detector_keys_of_an_edited_config(old_root, tiny_tflite, wheel):  # noqa: F811
    conf = old_root / "etc/fer-edge/config.yaml"
    old = OLD.read_text().replace("    profile: true ", "    profile: false", 1)
    conf.write_text(re.sub(r"(?m)^(\s+threads:) \d+", r"\1 99", old, count=1))
    r = install(old_root, tiny_tflite, wheel, "--no-systemctl")
    assert r.returncode == 2 and "edge.threads" in r.stderr and "left as it was" in r.stderr, r.stdout + r.stderr
    assert not (old_root / "etc/fer-edge/config.yaml.migrated").exists() and "threads: 99" in conf.read_text()

    conf.write_text(old)
    r = install(old_root, tiny_tflite, wheel, "--no-systemctl")
    skip_offline(r)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "edge.detector.profile -> edge.detector.haar.profile" in r.stdout and "config.yaml.bak" in r.stdout
    assert (old_root / "etc/fer-edge/config.yaml.bak").read_text() == old
    new = conf.read_text()
    assert "      profile: false" in new and "# Haar cascade minNeighbors" in new
    assert not (old_root / "etc/fer-edge/config.yaml.migrated").exists()
    py = in_use(old_root) / "bin/python"
    code = ("import sys, fer_edge.edge.detect; from fer_edge.common.config import load_config; "
            "print(load_config(sys.argv[1]).edge.detector.own)")
    shown = subprocess.run([py, "-I", "-c", code, conf], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "HaarConfig(profile=False" in shown.stdout, shown.stderr
    assert yaml.safe_load(new)["edge"]["detector"]["blazeface"] == {"min_score": 0.3, "model_dir": ""}

    r = install(old_root, tiny_tflite, wheel, "--no-systemctl")
    assert r.returncode == 0 and "moved" not in r.stdout and conf.read_text() == new, r.stdout + r.stderr
