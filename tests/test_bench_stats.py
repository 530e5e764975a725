"""The statistics the benchmarks report: which kdef-dev photos a run got right, and the paired test
that says whether two models' difference on them is more than chance."""
from __future__ import annotations

import csv

import pytest

from bench.bench_classifier import mcnemar_p
from bench.bench_detect import per_class, right_photos


@pytest.mark.parametrize("only_a,only_b,want", [
    (0, 0, 1.0), (10, 10, 1.0),
    (5, 15, 0.041389465),          # two-sided binomial test of 5 in 20 at 1/2
    (15, 5, 0.041389465), (0, 10, 0.001953125), (6, 19, 0.014633),
])
def test_exact_mcnemar_p_matches_the_binomial_test(only_a, only_b, want):
    assert mcnemar_p(only_a, only_b) == pytest.approx(want, rel=1e-4)


def test_a_photo_is_right_when_its_largest_face_has_its_label(tmp_path):
    log = tmp_path / "emotions.csv"
    rows = [("/p/AF01HAS.JPG", 100, 100, "happy"), ("/p/AF01HAS.JPG", 20, 20, "sad"),     # largest face right
            ("/p/AF01SAS.JPG", 10, 10, "sad"), ("/p/AF01SAS.JPG", 90, 90, "happy"),       # largest face wrong
            ("/p/AM02ANHL.JPG", 80, 80, "angry")]                                         # turned, right
    with open(log, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "w", "h", "emotion"])
        w.writerows(rows)
    names = ["AF01HAS.JPG", "AF01SAS.JPG", "AM02ANHL.JPG", "AM02NES.JPG"]     # the last: no face found
    assert right_photos(log, names) == {"AF01HAS.JPG", "AM02ANHL.JPG"}
    classes = per_class(log, names)
    assert classes["happy"] == {"n": 1, "right": 1, "wrong_as": None}
    assert classes["sad"] == {"n": 1, "right": 0, "wrong_as": ("happy", 1)}
    assert classes["neutral"] == {"n": 1, "right": 0, "wrong_as": ("no face", 1)}
    assert classes["fear"]["n"] == 0 and sorted(classes) == sorted(["angry", "disgust", "fear", "happy", "neutral",
                                                                     "sad", "surprise"])
