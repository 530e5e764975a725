"""The one preprocessing function: a face crop (any size, gray/BGR/BGRA) -> model input pixels.

Training data, calibration data and the edge runtime all go through ``preprocess_face`` so the
model always sees the same kind of pixels: uint8 grayscale, ``size`` x ``size``, raw 0..255
(the model rescales internally).
"""
from __future__ import annotations

import cv2
import numpy as np

INPUT_SIZE = 48


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 grayscale view of a gray, BGR or BGRA image.

    Raises ValueError for anything else (so callers can skip the frame with a message).
    """
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("empty image")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}: expected HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA)")


def preprocess_face(face: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Face crop -> (size, size) uint8 grayscale, raw pixel values 0..255."""
    gray = to_gray(face)
    if gray.shape != (size, size):
        interp = cv2.INTER_AREA if min(gray.shape) > size else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    return np.ascontiguousarray(gray, dtype=np.uint8)
