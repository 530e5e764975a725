"""FER-2013 loaders: the three layouts users have, bad inputs, the cache, the protocol split."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_edge.common.labels import CSV_CODE_TO_LABEL, LABELS
from fer_edge.train import data as fer
from fer_edge.train.data import DataError, detect_form, load_fer, stratified_split

RNG = np.random.default_rng(0)


def _img(size=48, color=False):
    shape = (size, size, 3) if color else (size, size)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def make_folders(root: Path, splits=("train", "test"), per_class=4, size=48, color=False, prefix=None):
    for split in splits:
        for c in LABELS:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f"{prefix[split] if prefix else split}_{c}_{i}.jpg"
                cv2.imwrite(str(d / name), _img(size, color))
    return root


def make_csv(path: Path, per_class=4, extra_rows=()):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage in ("Training", "PublicTest", "PrivateTest"):
            for code in CSV_CODE_TO_LABEL:
                for _ in range(per_class):
                    w.writerow([code, " ".join(map(str, _img().ravel())), usage])
        for row in extra_rows:
            w.writerow(row)
    return path


def test_kaggle_folders(tmp_path):
    root = make_folders(tmp_path / "fer", per_class=10)
    d = load_fer(root, tmp_path / "cache", val_fraction=0.2, seed=1)
    assert d.form == "kaggle"
    assert len(d.train) + len(d.val) == 70 and len(d.test) == 70
    assert d.val.counts() == [2] * 7  # stratified
    assert d.train.x.shape[1:] == (48, 48) and d.train.x.dtype == np.uint8


def test_images_layout_any_size_and_color_is_converted(tmp_path):
    root = tmp_path / "ds"
    make_folders(root / "images", splits=("train", "validation"), size=96, color=True)
    d = load_fer(root, None, val_fraction=0.25)
    assert d.form == "images"
    assert d.train.x.shape[1:] == (48, 48) and d.test.x.shape == (28, 48, 48)


def test_csv_form_maps_numeric_codes(tmp_path):
    p = make_csv(tmp_path / "fer2013.csv", per_class=3)
    d = load_fer(tmp_path, None, val_fraction=0.34)
    assert d.form == "csv"
    assert len(d.train) + len(d.val) == 21 and len(d.test) == 42   # PublicTest + PrivateTest
    # code 4 is "sad" and code 6 "neutral" in the CSV: our label order differs
    with open(p) as fh:
        first_sad = next(r for r in csv.DictReader(fh) if r["emotion"] == "4")
    px = np.array(first_sad["pixels"].split(), np.uint8).reshape(48, 48)
    i = next(i for i in range(len(d.train.x)) if np.array_equal(d.train.x[i], px)) if any(
        np.array_equal(x, px) for x in d.train.x) else None
    split = d.train if i is not None else d.val
    i = i if i is not None else next(i for i in range(len(d.val.x)) if np.array_equal(d.val.x[i], px))
    assert LABELS[split.y[i]] == "sad"


def test_csv_subset_filter(tmp_path):
    make_csv(tmp_path / "fer2013.csv", per_class=2)
    assert len(load_fer(tmp_path, None, test_subset="PrivateTest", verbose=False).test) == 14


def test_kaggle_subset_filter_by_file_name(tmp_path):
    root = make_folders(tmp_path / "k", prefix={"train": "Training", "test": "PublicTest"})
    make_folders(root, splits=("test",), prefix={"test": "PrivateTest"})
    assert len(load_fer(root, None, verbose=False).test) == 56
    assert len(load_fer(root, None, test_subset="PrivateTest", verbose=False).test) == 28


def test_malformed_csv_rows_are_skipped_and_reported(tmp_path, capsys):
    make_csv(tmp_path / "fer2013.csv", per_class=2, extra_rows=[
        [9, " ".join(["1"] * 2304), "Training"],          # unknown code
        [1, "1 2 3", "Training"],                           # too few pixels
        ["x", " ".join(["1"] * 2304), "Training"],        # not a number
        [2, " ".join(["1"] * 2304), "Holdout"],           # unknown usage
    ])
    d = load_fer(tmp_path, None)
    assert d.skipped["malformed_rows"] and len(d.skipped["malformed_rows"]) == 4
    assert "skipped 4 malformed rows" in capsys.readouterr().err
    assert len(d.train) + len(d.val) == 14


def test_csv_without_required_columns_stops(tmp_path):
    (tmp_path / "fer2013.csv").write_text("label,data\n1,2\n")
    with pytest.raises(DataError, match="emotion"):
        load_fer(tmp_path, None)


def test_unreadable_files_are_skipped_and_reported(tmp_path, capsys):
    root = make_folders(tmp_path / "k")
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "test" / "sad" / "notes.txt").write_text("hello")
    d = load_fer(root, None)
    assert len(d.skipped["unreadable_files"]) == 2
    err = capsys.readouterr().err
    assert "skipped 2 unreadable files" in err and "broken.jpg" in err


@pytest.mark.parametrize("breakage, message", [
    (lambda r: (r / "train" / "contempt").mkdir(), "unknown class folder"),
    (lambda r: [p.unlink() for p in (r / "train" / "disgust").iterdir()], "has no files"),
    (lambda r: __import__("shutil").rmtree(r / "test" / "fear"), "missing class folder"),
])
def test_structural_problems_stop_the_run(tmp_path, breakage, message):
    root = make_folders(tmp_path / "k")
    breakage(root)
    with pytest.raises(DataError, match=message):
        load_fer(root, None)


def test_class_with_only_unreadable_files_stops(tmp_path):
    root = make_folders(tmp_path / "k")
    for p in (root / "train" / "angry").iterdir():
        p.write_bytes(b"garbage")
    with pytest.raises(DataError, match="angry"):
        load_fer(root, None, verbose=False)


def test_detect_form_explains_what_it_expected(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        detect_form(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match="train/ and test/"):
        detect_form(tmp_path / "random")


def test_cache_avoids_decoding_twice_and_follows_content(tmp_path, monkeypatch):
    root = make_folders(tmp_path / "k")
    cache = tmp_path / "cache"
    first = load_fer(root, cache, verbose=False)
    assert len(list(cache.glob("fer-*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again although cached")
    monkeypatch.setattr(fer.cv2, "imdecode", boom)
    second = load_fer(root, cache, verbose=False)
    assert np.array_equal(first.train.x, second.train.x)
    monkeypatch.undo()
    cv2.imwrite(str(root / "train" / "happy" / "new.jpg"), _img())   # content changed -> new key
    third = load_fer(root, cache, verbose=False)
    assert len(third.train) + len(third.val) == 29
    assert len(list(cache.glob("fer-*.npz"))) == 2


def test_stratified_split_is_seeded_and_disjoint():
    y = np.repeat(np.arange(7), [50, 5, 40, 90, 60, 55, 30])
    a_tr, a_va = stratified_split(y, 0.1, 7)
    b_tr, b_va = stratified_split(y, 0.1, 7)
    assert np.array_equal(a_va, b_va) and not set(a_tr) & set(a_va)
    assert len(a_tr) + len(a_va) == len(y)
    assert np.bincount(y[a_va]).tolist() == [5, 1, 4, 9, 6, 6, 3]   # every class, in proportion
    tr, va = stratified_split(y, 0.0, 7)                              # a final fit: everything trains
    assert va.size == 0 and tr.tolist() == list(range(len(y)))


def test_real_fer2013_counts(fer_root):
    d = load_fer(fer_root, Path(__file__).resolve().parent.parent / ".cache" / "fer2013", verbose=False)
    assert np.add(d.train.counts(), d.val.counts()).tolist() == [3995, 436, 4097, 7215, 4965, 4830, 3171]
    assert d.test.counts() == [467, 56, 496, 895, 607, 653, 415]
