"""An edited config.yaml of a version before the detector plugins (flat edge.detector keys) is moved to
the new sections by ``python -m fer_edge.common.config --migrate FILE``: values and comments kept, the
file before kept as FILE.bak, a second run changes nothing, bad files exit 2 in one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fer_edge.edge.detect  # noqa: F401 (its backends add edge.detector.<backend>)
from fer_edge.common.config import ConfigError, load_config
from fer_edge.common.config.migrate import migrate_file

ROOT = Path(__file__).resolve().parent.parent
# a real config.yaml with the flat detector keys (the repository's, before the detector plugins), unchanged
OLD = ROOT / "tests" / "data" / "config-flat-detector.yaml"
MOVED_KEYS = {"haar": {"profile", "scale_factor", "min_neighbors", "profile_every"},
              "blazeface": {"min_score", "model_dir"}}


def _migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_edge.common.config", "--migrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_an_old_config_is_refused_then_migrated_with_its_edits_and_comments(tmp_path):
    conf = tmp_path / "config.yaml"
    old = OLD.read_text().replace("    profile: true ", "    profile: false", 1).replace("min_neighbors: 5 ", "min_neighbors: 4 ", 1)
    conf.write_text(old)
    with pytest.raises(ConfigError, match=r"is now 'edge\.detector\.\w+\.\w+'"):
        load_config(conf)
    r = _migrate(str(conf))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "edge.detector.profile -> edge.detector.haar.profile" in r.stdout and "config.yaml.bak" in r.stdout
    assert (tmp_path / "config.yaml.bak").read_text() == old
    new = conf.read_text()
    det = load_config(conf).edge.detector
    assert det.backends["haar"].profile is False and det.backends["haar"].min_neighbors == 4
    assert det.backend == "haar" and det.min_size == 24 and det.backends["blazeface"].min_score == 0.3
    raw = yaml.safe_load(new)["edge"]["detector"]
    assert {k: set(raw[k]) for k in MOVED_KEYS} == MOVED_KEYS and not set(raw) & set.union(*MOVED_KEYS.values())
    for line in old.splitlines():      # every line is still there (the moved ones indented under their backend)
        assert line.strip() in new, line
    assert new.count("\n") == old.count("\n") + 2          # + "haar:" and "blazeface:"
    assert {k: v for k, v in yaml.safe_load(new).items() if k != "edge"} == \
        {k: v for k, v in yaml.safe_load(old).items() if k != "edge"}
    again = _migrate(str(conf))
    assert again.returncode == 0 and "nothing to change" in again.stdout and conf.read_text() == new
    assert (tmp_path / "config.yaml.bak").read_text() == old


def test_moved_keys_join_a_backend_section_the_file_has_already(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("edge:\n  detector:\n    min_score: 0.6   # mine\n    blazeface:\n        model_dir: ''\n"
                    "    backend: blazeface\n  threads: 2\n")
    out = tmp_path / "out.yaml"
    r = _migrate(str(conf), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "c.yaml.bak").exists()
    assert "        min_score: 0.6   # mine\n" in out.read_text()
    cfg = load_config(out)
    assert cfg.edge.detector.own.min_score == 0.6 and cfg.edge.detector.backend == "blazeface" and cfg.edge.threads == 2


def test_a_flow_style_section_is_migrated_without_its_comments(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("# mine\nedge: {detector: {profile_every: 2, min_size: 30}}\n")
    assert "no comments" in migrate_file(conf)
    det = load_config(conf).edge.detector
    assert det.backends["haar"].profile_every == 2 and det.min_size == 30


@pytest.mark.parametrize("text, words", [
    ("edge:\n  detector:\n    profile: false\n    haar:\n      profile: true\n",
     "'edge.detector.profile' is now 'edge.detector.haar.profile', and both are set"),
    ("edge: [1\n", "not valid YAML"),
])
def test_a_file_it_cannot_migrate_exits_2_in_one_line(tmp_path, text, words):
    conf = tmp_path / "c.yaml"
    conf.write_text(text)
    r = _migrate(str(conf))
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and words in err[0] and "Traceback" not in r.stderr, r.stderr
    assert conf.read_text() == text and not (tmp_path / "c.yaml.bak").exists()
