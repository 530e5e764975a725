"""Mixup / CutMix (train.augment.make_mix): faces, labels and class weights are mixed with the same lam."""
from __future__ import annotations

import numpy as np
import pytest

from fer_edge.common.labels import LABELS

tf = pytest.importorskip("tensorflow")
from fer_edge.common.config import AugmentConfig  # noqa: E402
from fer_edge.train.augment import make_mix  # noqa: E402


def _aug(mixup=0.0, cutmix=0.0, prob=1.0) -> AugmentConfig:
    return AugmentConfig(mixup_alpha=mixup, cutmix_alpha=cutmix, mix_prob=prob)


def _real_batch(fer_root, per_class: int = 6):
    """(faces float32 (B,48,48,1) 0..255, one-hot labels, class weights 1..7) from real training faces."""
    import cv2
    xs, ys = [], []
    for k, label in enumerate(LABELS):
        for f in sorted((fer_root / "train" / label).iterdir())[:per_class]:
            xs.append(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))
            ys.append(k)
    order = np.random.RandomState(0).permutation(len(ys))       # a shuffled batch, as in training
    x = np.stack(xs)[order].astype(np.float32)[..., None]
    y = np.array(ys)[order]
    return tf.constant(x), tf.one_hot(y, len(LABELS)), tf.constant(y.astype(np.float32) + 1.0)


def test_mixing_off_returns_none():
    assert make_mix(_aug(), 1) is None
    assert make_mix(_aug(mixup=0.2, prob=0.0), 1) is None


def test_mixup_blends_real_faces_labels_and_weights_with_one_lam(fer_root):
    x, y, w = _real_batch(fer_root)
    xm, ym, wm = (t.numpy() for t in make_mix(_aug(mixup=0.4), 3)(x, y, w))
    x, y, w = x.numpy(), y.numpy(), w.numpy()
    xb, yb, wb = np.roll(x, 1, 0), np.roll(y, 1, 0), np.roll(w, 1, 0)
    np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)
    checked = 0
    for i in range(len(x)):
        a, b = y[i].argmax(), yb[i].argmax()
        if a == b:
            continue
        lam = ym[i, a]
        assert ym[i, b] == pytest.approx(1 - lam, abs=1e-6)
        np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * xb[i], atol=1e-3)
        assert wm[i] == pytest.approx(lam * w[i] + (1 - lam) * wb[i], abs=1e-5)
        checked += 1
    assert checked > 30
    assert (ym.max(1) < 0.99).sum() > 5                          # really mixed, not just relabelled


def test_cutmix_label_is_the_area_kept():
    """Constant images with distinct values make the pasted box exactly measurable."""
    n = 64
    x = tf.constant(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 48, 48, 1), np.float32))
    y = tf.one_hot(np.arange(n) % 7, 7)
    w = tf.ones([n])
    xm, ym, wm = (t.numpy() for t in make_mix(_aug(cutmix=1.0), 5)(x, y, w))
    for i in range(n):
        own = (xm[i] == i).mean()
        partner = (xm[i] == (i - 1) % n).mean()
        assert own + partner == pytest.approx(1.0)
        a, b = i % 7, (i - 1) % n % 7
        if a != b:
            assert ym[i, a] == pytest.approx(own, abs=1e-5) and ym[i, b] == pytest.approx(partner, abs=1e-5)
        if 0 < partner < 1:                                       # the pasted region is one rectangle
            rows, cols = np.nonzero(xm[i, ..., 0] == (i - 1) % n)
            assert partner * 48 * 48 == pytest.approx((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))
    np.testing.assert_allclose(wm, 1.0)


def test_mix_prob_is_the_fraction_mixed_and_the_seed_fixes_the_stream():
    n = 2048
    x = tf.constant(np.random.RandomState(1).uniform(0, 255, (n, 48, 48, 1)).astype(np.float32))
    y = tf.one_hot(np.arange(n) % 7, 7)
    w = tf.ones([n])
    _, ym, _ = make_mix(_aug(mixup=0.2, cutmix=1.0, prob=0.3), 9)(x, y, w)
    mixed = (ym.numpy().max(1) < 1.0).mean()
    assert 0.25 < mixed < 0.35, mixed
    again = make_mix(_aug(mixup=0.2, cutmix=1.0, prob=0.3), 9)(x, y, w)[1].numpy()
    other = make_mix(_aug(mixup=0.2, cutmix=1.0, prob=0.3), 10)(x, y, w)[1].numpy()
    np.testing.assert_array_equal(ym.numpy(), again)
    assert not np.array_equal(ym.numpy(), other)
