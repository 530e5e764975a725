"""config.yaml is complete and the validator names the key and value of every problem (exit code 2)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fer_edge.edge.detect  # noqa: F401 (its backends add edge.detector.<backend> to SCHEMA)
from fer_edge.common.config import DEFAULT_CONFIG, SCHEMA, ConfigError, defaults, display_path, load_config

ROOT = Path(__file__).resolve().parent.parent


def _leaf_paths(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        p = f"{prefix}.{k}" if prefix else k
        out |= _leaf_paths(v, p) if isinstance(v, dict) else {p}
    return out


def test_config_yaml_sets_every_key_and_matches_schema_defaults():
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert _leaf_paths(raw) == _leaf_paths(SCHEMA), "config.yaml and fer_edge/common/config.py SCHEMA disagree"
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.train.arch == "default"


def test_every_key_in_config_yaml_is_commented():
    for line in DEFAULT_CONFIG.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#") and not s.endswith(":"):
            assert "#" in s, f"config.yaml line without a comment: {line!r}"


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("mutate, key, words", [
    (lambda c: c["train"].__setitem__("epochz", 3), "train.epochz", ["unknown"]),
    (lambda c: c.__setitem__("trian", {}), "trian", ["unknown"]),
    (lambda c: c["train"].__setitem__("epochs", "ten"), "train.epochs", ["'ten'", "integer"]),
    (lambda c: c["train"]["augment"].__setitem__("hflip", "yes"), "train.augment.hflip", ["true/false"]),
    (lambda c: c["edge"].__setitem__("flip_tta", "yes"), "edge.flip_tta", ["'yes'", "'auto'"]),
    (lambda c: c["data"].__setitem__("val_fraction", 0.9), "data.val_fraction", ["0.9", "maximum"]),
    (lambda c: c["edge"]["detector"]["haar"].__setitem__("min_neighbors", -1), "edge.detector.haar.min_neighbors",
     ["-1", "minimum"]),
    (lambda c: c["train"].__setitem__("arch", "resnet9000"), "train.arch", ["resnet9000", "default"]),
    (lambda c: c["web"].__setitem__("port", 70000), "web.port", ["70000"]),
    (lambda c: c.__setitem__("edge", [1, 2]), "edge", ["mapping"]),
])
def test_validator_names_key_and_value(tmp_path, mutate, key, words):
    raw = defaults()
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, raw))
    msg = str(exc.value)
    assert f"'{key}'" in msg
    for w in words:
        assert w in msg


def test_ints_are_accepted_for_floats_but_bools_are_not_ints(tmp_path):
    raw = defaults()
    raw["train"]["learning_rate"] = 1
    assert load_config(_write(tmp_path, raw)).train.learning_rate == 1.0
    raw["train"]["epochs"] = True
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(_write(tmp_path, raw))


def test_overrides_are_validated_too():
    cfg = load_config(None, ["train.epochs=3", ("data.root", "/x")])
    assert cfg.train.epochs == 3 and cfg.data.root == "/x"
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=0"])


def test_a_final_fit_cannot_use_the_plateau_schedule():
    assert load_config(None, ["data.val_fraction=0"]).data.val_fraction == 0.0     # a final fit, cosine
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["data.val_fraction=0", "train.lr_schedule=plateau"])
    assert "'train.lr_schedule'" in str(exc.value) and "val_fraction" in str(exc.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("args, key", [
    (["--set", "train.epochz=3"], "known keys here: arch, augment, average_last"),   # names the typo and the keys
    (["--epochs", "0"], "train.epochs"),
    (["--arch", "nope"], "train.arch"),
])
def test_train_cli_exits_2_naming_the_key(args, key):
    r = subprocess.run([sys.executable, "-m", "fer_edge.train", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert key in r.stderr
    assert "tensorflow" not in r.stderr.lower()  # caught before anything heavy starts


def test_display_path_is_portable_inside_the_repo_and_beside_it(tmp_path):
    # reports and contracts record these: relative where they can be, so they mean the same elsewhere
    assert display_path(ROOT / "runs" / "r1" / "model.keras") == "runs/r1/model.keras"
    assert display_path(ROOT / ".." / "shared" / "data") == "../shared/data"
    assert display_path(Path("/") / "nowhere-near" / "x") == "/nowhere-near/x"


def test_an_older_runs_config_gets_the_keys_added_since_as_defaults():
    from fer_edge.common.config import SCHEMA, with_defaults
    old = {"train": {"epochs": 75, "augment": {"hflip": False}}, "data": {"root": "x"}}
    cfg = with_defaults(old)
    assert cfg["train"]["epochs"] == 75 and cfg["train"]["augment"]["hflip"] is False and cfg["data"]["root"] == "x"
    assert cfg["train"]["average_last"] == SCHEMA["train"]["average_last"].default == 0      # off for old runs
    assert cfg["train"]["augment"]["mixup_alpha"] == 0.0 and set(cfg) == set(SCHEMA)
    assert old == {"train": {"epochs": 75, "augment": {"hflip": False}}, "data": {"root": "x"}}   # not modified
