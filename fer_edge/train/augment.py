"""Batch augmentation for training, as one tf.data map over (B, 48, 48, 1) float32 0..255.

Rotation, shear, zoom, shifts and horizontal flip are composed into a single affine transform per
image (one resampling instead of five), then brightness/contrast jitter and random erasing.
Mixup / CutMix then blend pairs of faces in the batch and their labels (and class weights) alike.
"""
from __future__ import annotations

import math

import tensorflow as tf

from fer_edge.common.config import AugmentConfig


def _box_mask(h, w, y0, y1, x0, x1):
    """(B, h, w) bool: pixel (r, c) with y0 <= r < y1 and x0 <= c < x1, per image (float bounds, shape [B])."""
    rows = tf.cast(tf.range(h), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(w), tf.float32)[None, None, :]
    return ((rows >= y0[:, None, None]) & (rows < y1[:, None, None]) &
            (cols >= x0[:, None, None]) & (cols < x1[:, None, None]))


def _photometric(gen: tf.random.Generator, bright: float, contrast: float):
    """Brightness and contrast jitter of each image, its random numbers drawn from ``gen``."""
    def photometric(x):
        b = tf.shape(x)[0]
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        cf = tf.reshape(gen.uniform([b], 1.0 - contrast, 1.0 + contrast), [-1, 1, 1, 1])
        bf = tf.reshape(gen.uniform([b], -bright, bright) * 255.0, [-1, 1, 1, 1])
        return tf.clip_by_value((x - mean) * cf + mean + bf, 0.0, 255.0)
    return photometric


def _erase(gen: tf.random.Generator, erase_p: float):
    """Random erasing: with probability ``erase_p`` a box of noise (2-25% of the face) per image."""
    def erase(x):
        b = tf.shape(x)[0]
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
        area = gen.uniform([b], 0.02, 0.25) * hf * wf
        log_r = gen.uniform([b], math.log(0.3), math.log(3.3))
        eh = tf.clip_by_value(tf.sqrt(area * tf.exp(log_r)), 1.0, hf)
        ew = tf.clip_by_value(tf.sqrt(area / tf.exp(log_r)), 1.0, wf)
        y0 = gen.uniform([b], 0.0, 1.0) * (hf - eh)
        x0 = gen.uniform([b], 0.0, 1.0) * (wf - ew)
        inside = _box_mask(h, w, y0, y0 + eh, x0, x0 + ew)
        apply = (gen.uniform([b], 0.0, 1.0) < erase_p)[:, None, None]
        mask = tf.cast(inside & apply, tf.float32)[..., None]
        noise = gen.uniform(tf.shape(x), 0.0, 255.0)
        return x * (1.0 - mask) + noise * mask
    return erase


def make_augment(aug: AugmentConfig, seed: int):
    """Return ``fn(images) -> images`` for a batch of float32 images in 0..255."""
    rot = math.radians(aug.rotation_deg)
    shear = math.radians(aug.shear_deg)
    zoom, shift = aug.zoom, aug.shift
    bright, contrast, erase_p = aug.brightness, aug.contrast, aug.erasing_prob
    hflip = aug.hflip
    gen = tf.random.Generator.from_seed(seed)

    def affine(x):
        b = tf.shape(x)[0]
        h = tf.cast(tf.shape(x)[1], tf.float32)
        w = tf.cast(tf.shape(x)[2], tf.float32)
        u = lambda lo, hi: gen.uniform([b], lo, hi)  # noqa: E731
        theta, phi = u(-rot, rot), u(-shear, shear)
        z = u(1.0 - zoom, 1.0 + zoom)
        flip = tf.where(u(0.0, 1.0) < 0.5, -1.0, 1.0) if hflip else tf.ones([b])
        tx, ty = u(-shift, shift) * w, u(-shift, shift) * h
        # output->input map: A = R(theta) @ Shear(phi) @ diag(flip / z, 1 / z), about the centre
        c, s, t = tf.cos(theta), tf.sin(theta), tf.tan(phi)
        sx, sy = flip / z, 1.0 / z
        a00, a01 = c * sx, (c * t - s) * sy
        a10, a11 = s * sx, (s * t + c) * sy
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        a02 = cx - a00 * cx - a01 * cy + tx
        a12 = cy - a10 * cx - a11 * cy + ty
        zeros = tf.zeros([b])
        transforms = tf.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
            interpolation="BILINEAR", fill_mode="REFLECT")

    photometric, erase = _photometric(gen, bright, contrast), _erase(gen, erase_p)

    def fn(x):
        x = affine(x)
        if bright > 0 or contrast > 0:
            x = photometric(x)
        if erase_p > 0:
            x = erase(x)
        return x

    return fn


def _beta(gen: tf.random.Generator, shape, alpha: float):
    """Beta(alpha, alpha) samples as G1 / (G1 + G2), the gammas seeded from ``gen``."""
    g1 = tf.random.stateless_gamma(shape, seed=gen.make_seeds(1)[:, 0], alpha=alpha)
    g2 = tf.random.stateless_gamma(shape, seed=gen.make_seeds(1)[:, 0], alpha=alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def make_mix(aug: AugmentConfig, seed: int):
    """Return ``fn(images, onehot, weights) -> (images, soft_labels, weights)`` that mixes each face
    with its neighbour in the (shuffled) batch, or None when mixing is off.

    Each face is mixed with probability ``mix_prob``: by mixup (``x = lam*a + (1-lam)*b``) or, when
    both alphas are set, by CutMix half the time (a box of ``b`` pasted into ``a``, lam = kept area).
    Labels and class weights are mixed with the same lam, so the loss stays a proper expectation."""
    mixup_a, cutmix_a, prob = aug.mixup_alpha, aug.cutmix_alpha, aug.mix_prob
    if prob <= 0 or (mixup_a <= 0 and cutmix_a <= 0):
        return None
    gen = tf.random.Generator.from_seed(seed + 7919)

    def fn(x, y, w):
        b = tf.shape(x)[0]
        h, wd = tf.shape(x)[1], tf.shape(x)[2]
        hf, wf = tf.cast(h, tf.float32), tf.cast(wd, tf.float32)
        xb, yb, wb = tf.roll(x, 1, axis=0), tf.roll(y, 1, axis=0), tf.roll(w, 1, axis=0)
        apply = gen.uniform([b], 0.0, 1.0) < prob
        lam = _beta(gen, [b], mixup_a) if mixup_a > 0 else tf.ones([b])
        mixed = tf.reshape(lam, [-1, 1, 1, 1]) * x + (1.0 - tf.reshape(lam, [-1, 1, 1, 1])) * xb
        if cutmix_a > 0:
            # CutMix box of area (1 - lam_cut), centred uniformly, clipped to the face
            use_cut = gen.uniform([b], 0.0, 1.0) < 0.5 if mixup_a > 0 else tf.fill([b], True)
            cut = tf.sqrt(1.0 - _beta(gen, [b], cutmix_a))
            cy, cx = gen.uniform([b], 0.0, 1.0) * hf, gen.uniform([b], 0.0, 1.0) * wf
            box = tf.cast(_box_mask(h, wd, tf.clip_by_value(cy - cut * hf / 2, 0.0, hf),
                                    tf.clip_by_value(cy + cut * hf / 2, 0.0, hf),
                                    tf.clip_by_value(cx - cut * wf / 2, 0.0, wf),
                                    tf.clip_by_value(cx + cut * wf / 2, 0.0, wf)), tf.float32)[..., None]
            lam = tf.where(use_cut, 1.0 - tf.reduce_mean(box, axis=[1, 2, 3]), lam)   # the area actually kept
            mixed = tf.where(tf.reshape(use_cut, [-1, 1, 1, 1]), x * (1.0 - box) + xb * box, mixed)
        lam = tf.where(apply, lam, 1.0)
        x = tf.where(tf.reshape(apply, [-1, 1, 1, 1]), mixed, x)
        l2 = lam[:, None]
        return x, l2 * y + (1.0 - l2) * yb, lam * w + (1.0 - lam) * wb

    return fn
