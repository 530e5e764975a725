"""Batch augmentation for training, as one tf.data map over (B, 48, 48, 1) float32 0..255.

Rotation, shear, zoom, shifts and horizontal flip are composed into a single affine transform per
image (one resampling instead of five), then brightness/contrast jitter and random erasing.
"""
from __future__ import annotations

import math

import tensorflow as tf


def make_augment(aug: dict, seed: int):
    """Return ``fn(images) -> images`` for a batch of float32 images in 0..255."""
    rot = math.radians(float(aug["rotation_deg"]))
    shear = math.radians(float(aug["shear_deg"]))
    zoom, shift = float(aug["zoom"]), float(aug["shift"])
    bright, contrast, erase_p = float(aug["brightness"]), float(aug["contrast"]), float(aug["erasing_prob"])
    hflip = bool(aug["hflip"])
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

    def photometric(x):
        b = tf.shape(x)[0]
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        cf = tf.reshape(gen.uniform([b], 1.0 - contrast, 1.0 + contrast), [-1, 1, 1, 1])
        bf = tf.reshape(gen.uniform([b], -bright, bright) * 255.0, [-1, 1, 1, 1])
        return tf.clip_by_value((x - mean) * cf + mean + bf, 0.0, 255.0)

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
        rows = tf.cast(tf.range(h), tf.float32)[None, :, None]
        cols = tf.cast(tf.range(w), tf.float32)[None, None, :]
        inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None]) &
                  (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
        apply = (gen.uniform([b], 0.0, 1.0) < erase_p)[:, None, None]
        mask = tf.cast(inside & apply, tf.float32)[..., None]
        noise = gen.uniform(tf.shape(x), 0.0, 255.0)
        return x * (1.0 - mask) + noise * mask

    def fn(x):
        x = affine(x)
        if bright > 0 or contrast > 0:
            x = photometric(x)
        if erase_p > 0:
            x = erase(x)
        return x

    return fn
