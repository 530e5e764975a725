"""An image's width and height read from its header, before anything is decoded.

A 100 KB PNG can declare 30000x30000 pixels and take gigabytes once decoded (a decompression
bomb). Uploads and image files are checked here first and refused above ``edge.max_image_mp``
megapixels. Formats: JPEG, PNG, WebP, BMP, GIF, TIFF and PNM (pgm, ppm, pbm); for anything else,
or a header that does not say, ``image_size`` returns None and the caller refuses the file.
"""
from __future__ import annotations

import struct

HEADER_BYTES = 1 << 20        # where a header must say the size (JPEG: after EXIF and other segments)
MAX_JPEG_SEGMENTS = 1024      # segments before the frame header (cameras write a dozen)


class ImageTooLarge(ValueError):
    """The image declares more pixels than allowed; the message names it and the limit."""


def _jpeg(b: bytes) -> tuple[int, int] | None:
    i = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        if i + 9 >= len(b) or b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:                      # fill bytes: skip the whole run at once
            i = len(b) - len(b[i:].lstrip(b"\xff")) - 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # no length field
            i += 2
            continue
        length = struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None                                 # no frame header among the first segments: refused


def _webp(b: bytes) -> tuple[int, int] | None:
    chunk = b[12:16]
    if chunk == b"VP8 " and len(b) >= 30:
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(b) >= 25:
        b0, b1, b2, b3 = b[21:25]
        return 1 + (b0 | (b1 & 0x3F) << 8), 1 + (b1 >> 6 | b2 << 2 | (b3 & 0x0F) << 10)
    if chunk == b"VP8X" and len(b) >= 30:
        return 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    return None


def _tiff(b: bytes) -> tuple[int, int] | None:
    e = "<" if b[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", b[4:8])
    if ifd + 2 > len(b):
        return None
    (n,) = struct.unpack(e + "H", b[ifd:ifd + 2])
    size = {}
    for k in range(n):
        off = ifd + 2 + 12 * k
        if off + 12 > len(b):
            return None
        tag, typ = struct.unpack(e + "HH", b[off:off + 4])
        if tag in (256, 257):
            size[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), b[off + 8:off + (10 if typ == 3 else 12)])[0]
    return (size[256], size[257]) if len(size) == 2 else None


_PNM_SPACE = frozenset(b" \t\n\r\v\f")
_DIGITS = frozenset(b"0123456789")


def _pnm(b: bytes) -> tuple[int, int] | None:
    """Width and height after the magic: each number preceded by whitespace or ``#`` comments. One
    forward pass over at most 1 KB (a backtracking pattern here once took minutes on 43 bytes)."""
    b, i = b[:1024], 2
    nums: list[int] = []
    while len(nums) < 2:
        start = i
        while i < len(b) and (b[i] in _PNM_SPACE or b[i] == 0x23):
            if b[i] == 0x23:                                     # a comment runs to the end of its line
                end = b.find(b"\n", i)
                if end < 0:
                    return None
                i = end
            i += 1
        j = i
        while j < len(b) and b[j] in _DIGITS and j - i < 10:
            j += 1
        if i == start or j == i or (j < len(b) and b[j] in _DIGITS):
            return None
        nums.append(int(b[i:j]))
        i = j
    return nums[0], nums[1]


def image_size(b: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of an image file, or None when the header does not say."""
    try:
        if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
            return struct.unpack(">II", b[16:24])
        if b[:3] == b"\xff\xd8\xff":
            return _jpeg(b)
        if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
            return _webp(b)
        if b[:2] == b"BM":
            (dib,) = struct.unpack("<I", b[14:18])
            if dib == 12:
                return struct.unpack("<HH", b[18:22])
            w, h = struct.unpack("<ii", b[18:26])
            return abs(w), abs(h)
        if b[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", b[6:10])
        if b[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(b)
        if b[:1] == b"P" and b[1:2] in b"123456" and len(b) > 1:
            return _pnm(b)
    except struct.error:
        return None
    return None


def check_size(b: bytes, max_mp: float, what: str) -> tuple[int, int]:
    """(width, height) of the image whose first bytes are ``b``; ImageTooLarge above ``max_mp``
    megapixels, ValueError when its header gives no size."""
    size = image_size(b)
    if size is None:
        raise ValueError(f"{what}: not a JPEG, PNG, WebP, BMP, GIF, TIFF or PNM image whose header gives its size")
    w, h = size
    if w * h > max_mp * 1e6:
        raise ImageTooLarge(f"{what} is {w}x{h} = {w * h / 1e6:.0f} megapixels, above the limit of {max_mp:g} "
                            "(edge.max_image_mp): scale it down first")
    return size
