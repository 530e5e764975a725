"""The colour of each emotion, the one definition that the overlay, the web page (its faces table and
history chart), and the report's charts all use.

Built from Okabe & Ito's colour-blind-safe palette (and Paul Tol's indigo for contempt), matched to
the emotions: happy warm orange, surprise yellow, angry vermillion, sad blue, fear purple, disgust
green, neutral light grey. Every pair stays apart under simulated protanopia, deuteranopia and
tritanopia (Machado et al. 2009; tests/test_palette.py holds the minimum distance). A label outside
FER-2013's and FER+'s sets (a custom model) gets a colour of ``OTHER`` picked by its name, the same
in Python and on the page.
"""
from __future__ import annotations

import json

EMOTION_COLORS: dict[str, str] = {    # sRGB hex
    "angry": "#D55E00",
    "disgust": "#009E73",
    "fear": "#CC79A7",
    "happy": "#E69F00",
    "neutral": "#CCCCCC",
    "sad": "#0072B2",
    "surprise": "#F0E442",
    "contempt": "#332288",
}
OTHER = ("#882255", "#44AA99", "#999933", "#88CCEE", "#117733", "#AA4499", "#661100", "#6699CC")


def color_hex(label: str) -> str:
    """``#RRGGBB`` of an emotion."""
    known = EMOTION_COLORS.get(label)
    return known if known is not None else OTHER[sum(map(ord, label)) % len(OTHER)]


def color_rgb(label: str) -> tuple[float, float, float]:
    """(r, g, b) in 0..1, as matplotlib takes it."""
    h = color_hex(label)
    return int(h[1:3], 16) / 255.0, int(h[3:5], 16) / 255.0, int(h[5:7], 16) / 255.0


def color_bgr(label: str) -> tuple[int, int, int]:
    """(b, g, r) in 0..255, as OpenCV draws it."""
    h = color_hex(label)
    return int(h[5:7], 16), int(h[3:5], 16), int(h[1:3], 16)


def script() -> str:
    """The palette as the web page's script constants (the page's ``emotionColor`` reads them)."""
    return (f"const EMOTION_COLORS = {json.dumps(EMOTION_COLORS)};\n"
            f"const OTHER_COLORS = {json.dumps(list(OTHER))};\n")
