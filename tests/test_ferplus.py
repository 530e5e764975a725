"""FER+ labels: the votes processed as FER+'s reference code does, the real vote file against the real
FER-2013 folders, a broken vote file as one line naming file and line, and the output layer's temperature
and logit adjustment folded into a real converted model."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fer_edge.common.labels import FERPLUS_LABELS, LABELS
from fer_edge.train import ferplus
from tests.conftest import CACHE_DIR, ROOT, tiny_config

I = {n: FERPLUS_LABELS.index(n) for n in FERPLUS_LABELS}


@pytest.mark.parametrize("votes, dist, majority", [
    # neutral happiness surprise sadness anger disgust fear contempt unknown NF
    ((2, 0, 0, 1, 7, 0, 0, 0, 0, 0), {"angry": 1.0}, "angry"),            # single votes dropped: 7 of 9
    ((5, 0, 0, 4, 0, 0, 0, 0, 1, 0), {"neutral": 5 / 9, "sad": 4 / 9}, "neutral"),
    ((0, 0, 3, 0, 2, 3, 1, 0, 1, 0), {"surprise": 0.5, "disgust": 0.5}, None),   # no majority: 3 of 8
    ((4, 0, 0, 3, 3, 0, 0, 0, 0, 0), {"neutral": 0.4, "sad": 0.3, "angry": 0.3}, None),   # three emotions, no majority
    ((2, 0, 0, 0, 0, 0, 0, 0, 6, 2), None, None),                        # unknown on top
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 10), None, None),                       # not a face
    ((1, 1, 1, 1, 1, 1, 1, 1, 1, 1), None, None),                        # only single votes
    ((3, 0, 0, 0, 0, 0, 0, 3, 2, 2), {"neutral": 0.5, "contempt": 0.5}, None),
])
def test_votes_are_processed_as_the_reference_code_does(votes, dist, majority):
    got = ferplus.distribution(np.array(votes, np.float32))
    if dist is None:
        assert got is None
    else:
        want = np.zeros(len(FERPLUS_LABELS), np.float32)
        for name, p in dist.items():
            want[I[name]] = p
        np.testing.assert_allclose(got, want, atol=1e-6)
    m = ferplus.majority(np.array(votes, np.float32))
    assert m == (None if majority is None else I[majority])


def test_a_face_whose_top_is_shared_by_four_emotions_is_left_out():
    """The reference keeps at most three emotions; four tied at the top are too many."""
    assert ferplus.distribution(np.array((2, 2, 2, 2, 0, 0, 0, 0, 2, 0), np.float32)) is None


@pytest.fixture(scope="module")
def plus(fer_root):
    from fer_edge.train.data import load_configured
    if not (fer_root / "ferplus.csv").is_file():
        pytest.skip(f"no FER+ vote file at {fer_root / 'ferplus.csv'}")
    cfg = tiny_config(fer_root, Path("/nonexistent"), **{"data.labels": "ferplus", "data.max_per_class": 0,
                                                         "data.label_blend": 0.25})
    thirteen = load_configured(replace(cfg.data, labels="fer2013"), verbose=False)
    return load_configured(cfg.data, verbose=False), thirteen


def test_real_votes_give_eight_classes_and_keep_the_hold_out(plus):
    d, d13 = plus
    assert d.labels == FERPLUS_LABELS and d.train.t.shape == (len(d.train), 8)
    assert all(n > 0 for n in d.train.counts()) and all(n > 0 for n in d.test.counts())
    # targets: the blended distribution sums to 1 and carries 0.25 on FER-2013's own label
    np.testing.assert_allclose(d.train.t.sum(1), 1.0, atol=1e-5)
    assert (d.train.t[np.arange(len(d.train)), d.train.y13] >= 0.25 - 1e-6).all()
    # the validation hold-out is the same faces in both label sets (FER+ leaves some out)
    assert set(d.val.names) <= set(d13.val.names) and len(d.val) > 0.8 * len(d13.val)
    assert not set(d.val.names) & set(d.train.names)
    # scored splits keep the annotators' own distribution and their majority
    np.testing.assert_array_equal(d.val.t.argmax(1), d.val.y)
    # the test split keeps its FER-2013 labels too, on every face
    assert d.test13 is not None and len(d.test13) == len(d13.test) and d.test13.labels == LABELS
    # FER-2013's "sad" faces: many are neutral by the annotators' majority (46% in ../shared/README.md)
    sad = d.val.y13 == LABELS.index("sad")
    assert 0.3 < (d.val.y[sad] == I["neutral"]).mean() < 0.6


def _votes_root(fer_root: Path, tmp: Path, text: str) -> Path:
    """A data root whose train/ and test/ are the real folders and whose ferplus.csv is ``text``."""
    root = tmp / "fer"
    root.mkdir()
    for split in ("train", "test"):
        (root / split).symlink_to(fer_root / split)
    (root / "ferplus.csv").write_text(text)
    return root


HEADER = "path,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


@pytest.mark.parametrize("body, line, words", [
    ("train/angry/NoSuchFace.jpg,0,0,0,0,10,0,0,0,0,0\n", 2, "names no image"),
    ("{first}\ntrain/angry/x.jpg,1,2\n", 3, "fields"),
    ("{first}\n{first_path},a,0,0,0,10,0,0,0,0,0\n", 3, "whole numbers"),
    ("{first}\n{first_path},-1,0,0,0,10,0,0,0,0,0\n", 3, "0 or more"),
])
def test_a_broken_vote_file_names_file_and_line(fer_root, tmp_path, body, line, words):
    from fer_edge.train.data import DataError, load_configured
    real = (fer_root / "ferplus.csv").read_text().splitlines()[1]
    root = _votes_root(fer_root, tmp_path, HEADER + body.format(first=real, first_path=real.split(",")[0]))
    cfg = tiny_config(root, tmp_path, **{"data.labels": "ferplus"})
    with pytest.raises(DataError) as err:
        load_configured(cfg.data, verbose=False)
    assert f"ferplus.csv:{line}:" in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_training_on_a_broken_vote_file_exits_2_with_one_line(fer_root, tmp_path):
    root = _votes_root(fer_root, tmp_path, HEADER + "train/angry/NoSuchFace.jpg,0,0,0,0,10,0,0,0,0,0\n")
    r = subprocess.run([sys.executable, "-m", "fer_edge.train", "--data", str(root), "--set", "data.labels=ferplus",
                        "--set", f"data.cache_dir={CACHE_DIR}", "--set", f"train.runs_dir={tmp_path / 'runs'}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "ferplus.csv:2:" in err[0] and "names no image" in err[0], r.stderr
    assert not (tmp_path / "runs").exists()


def test_a_missing_vote_file_names_it_and_the_way_out(fer_root, tmp_path):
    from fer_edge.train.data import DataError, load_configured
    cfg = tiny_config(fer_root, tmp_path, **{"data.labels": "ferplus", "data.ferplus_csv": str(tmp_path / "none.csv")})
    with pytest.raises(DataError, match=r"none\.csv not found.*data\.labels=fer2013"):
        load_configured(cfg.data, verbose=False)
    bad_header = tmp_path / "votes.csv"
    bad_header.write_text("path,happy\n")
    with pytest.raises(DataError, match=r"votes\.csv:1: header"):
        load_configured(replace(cfg.data, ferplus_csv=str(bad_header)), verbose=False)


def test_the_folded_adjustment_is_exactly_the_adjusted_output(tiny_ferplus_keras_model):
    import keras

    from fer_edge.convert.output_adjust import adjust_probs, fold_into_model, log_prior_of
    from fer_edge.train.model import to_float32
    model = to_float32(keras.models.load_model(tiny_ferplus_keras_model, compile=False))
    x = np.random.default_rng(0).integers(0, 256, (16, 48, 48, 1)).astype(np.float32)
    lp = log_prior_of([100, 10, 30, 300, 400, 150, 120, 5])
    before = model.predict(x, verbose=0)
    folded = fold_into_model(model, lp, 0.7, 1.6).predict(x, verbose=0)
    np.testing.assert_allclose(folded, adjust_probs(before, lp, 0.7, 1.6), atol=2e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), before)          # the original is untouched


def test_an_eight_label_model_records_its_labels_temperature_and_calibration(tiny_ferplus_tflite):
    c = json.loads(tiny_ferplus_tflite.with_suffix(".json").read_text())
    assert c["labels"] == list(FERPLUS_LABELS) and c["label_source"] == "ferplus" and c["mirror_average"] is True
    adj = c["output_adjust"]
    assert adj["logit_adjust"] == 0.5 and 0.25 <= adj["temperature"] <= 4 and "validation" in adj["temperature_choice"]
    assert len(adj["train_counts"]) == 8
    q = c["metrics"]["int8"]
    assert set(q["per_class_f1"]) == set(FERPLUS_LABELS) and 0 <= q["ece_15"] <= 1 and q["cross_entropy_targets"] > 0


def test_eval_scores_both_label_sets(tiny_ferplus_keras_model, fer_root, tmp_path):
    out = tmp_path / "eval"
    r = subprocess.run([sys.executable, "-m", "fer_edge.train.evaluate", "--model", str(tiny_ferplus_keras_model),
                        "--data", str(fer_root), "--set", f"data.cache_dir={CACHE_DIR}", "--set", "data.max_per_class=60",
                        "--set", "data.labels=ferplus", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["labels"] == list(FERPLUS_LABELS) and "ferplus_seven_classes" in rep and "fer2013_labels" in rep
    md = (out / "report.md").read_text()
    assert "FER+ majority protocol" in md and "FER-2013's single labels" in md and "calibration error" in md
    shutil.rmtree(out)
