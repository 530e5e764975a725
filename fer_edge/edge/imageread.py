"""The one way a photo becomes pixels, for uploads, image files and image folders alike: its size
checked from the header first (no decompression bombs), decoded by OpenCV honouring its EXIF
orientation (a portrait phone photo comes out upright), at any depth (16-bit and float TIFFs), and
made uint8 gray, BGR or BGRA.
"""
from __future__ import annotations

import cv2
import numpy as np

from fer_edge.edge.imagesize import HEADER_BYTES, check_size

# Any depth and any colour, EXIF orientation applied (IMREAD_UNCHANGED would ignore it).
DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


class CorruptFrame(ValueError):
    """One frame could not be decoded or has an unusable format; the stream goes on."""


def normalize_image(image, what: str) -> np.ndarray:
    """Make ``image`` uint8 gray, BGR or BGRA; raise CorruptFrame for anything unusable."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise CorruptFrame(f"{what}: empty or undecodable frame")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise CorruptFrame(f"{what}: pixel type {image.dtype} is not an image")
        top = float(np.nanmax(image)) if image.size else 0.0
        if np.issubdtype(image.dtype, np.floating) and top <= 1.0:
            image = np.nan_to_num(image) * 255.0             # float images in 0..1 (TIFF, EXR)
        elif image.dtype == np.uint16 and top > 255:
            image = image >> 8                                # 16-bit PNG/TIFF using its range: the high byte
        image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)   # values already in 0..255 stay
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise CorruptFrame(f"{what}: frame shape {image.shape} is not gray, BGR or BGRA")


REDUCED = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))


def decode(data: bytes, what: str, max_mp: float, reduce_above_mp: float = 0.0) -> np.ndarray:
    """Image file bytes -> uint8 gray/BGR/BGRA, upright. ImageTooLarge above ``max_mp`` megapixels,
    ValueError (CorruptFrame included) for anything else that cannot be read; messages name ``what``.
    With ``reduce_above_mp``, a larger photo is decoded at 1/2, 1/4 or 1/8 of its size, to at most
    that many megapixels (JPEG scales while decoding: a 40 MP photo never takes its full memory)."""
    w, h = check_size(data[:HEADER_BYTES], max_mp, what)
    flags = DECODE_FLAGS
    if reduce_above_mp and w * h > reduce_above_mp * 1e6:
        flags = next((f for k, f in REDUCED if w * h / (k * k) <= reduce_above_mp * 1e6), REDUCED[-1][1])
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    if image is None:
        raise CorruptFrame(f"{what}: not a readable image")
    return normalize_image(image, what)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A gray or BGRA image as BGR (what detection and the overlay draw on)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image
