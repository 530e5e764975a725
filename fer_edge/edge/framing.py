"""The one crop function: a detection -> the face square framed the way FER-2013's faces are.

The classifier learned FER-2013's framing (a square from about the eyebrows' top to below the chin,
the face filling it), and every detector draws its box differently: Haar's frontal box is tight
around eyes and mouth, its profile box sits off-centre toward the turned face, BlazeFace's box is
square with the forehead cut. ``FRAMINGS`` holds, for each kind of box, the mapping onto the FER
square as measured by ``make bench ARGS="--only framing"`` (FER-2013 training faces upscaled onto a
larger canvas, each backend run on them, the median of the box -> 48x48 face mapping; the profile
cascade against BlazeFace's mapped square on turned faces). ``edge.detector.margin`` enlarges the
square further (0 = exactly the FER framing). Turning the crop so the eyes are level (BlazeFace's
landmarks) was measured and left out: no gain on kdef-dev (73.0% against 73.2%), FER's faces are
not levelled either.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fer_edge.common.preprocess import to_gray
from fer_edge.edge.types import Detection


@dataclass(frozen=True)
class Framing:
    """FER square of a box of width w centred at (cx, cy): side ``scale * w``, centre
    (cx + ``dx * w``, cy + ``dy * w``). With ``landmark_x``, cx is the mean x of the eyes, nose tip and
    mouth instead of the box's: a turned face's box also holds the ear, the square should not."""
    scale: float
    dx: float
    dy: float
    landmark_x: bool = False


FRAMINGS: dict[str, Framing] = {
    "haar": Framing(scale=1.007, dx=0.003, dy=0.007),
    "haar_profile": Framing(scale=0.872, dx=-0.211, dy=0.017),
    "blazeface": Framing(scale=1.053, dx=0.000, dy=-0.092, landmark_x=True),
}
MIRRORED = "_mirrored"        # a box found on the mirror image: the same framing, mirrored


def framing_of(name: str) -> Framing:
    if name.endswith(MIRRORED):
        f = FRAMINGS[name[:-len(MIRRORED)]]
        return Framing(f.scale, -f.dx, f.dy, f.landmark_x)
    return FRAMINGS[name]


def face_square(det: Detection, margin: float = 0.0) -> tuple[float, float, float]:
    """(cx, cy, side) of the FER-framed face square of ``det``, in frame pixels."""
    f, b = framing_of(det.framing), det.box
    cx = b.x + b.w / 2
    if f.landmark_x and len(det.landmarks) >= 4:
        cx = sum(x for x, _ in det.landmarks[:4]) / 4
    return (cx + f.dx * b.w, b.y + b.h / 2 + f.dy * b.w, f.scale * b.w * (1.0 + margin))


def _square(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side], with the border pixels repeated where it leaves the frame."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face square at ({x0}, {y0}) side {side} lies outside the {w}x{h} frame")
    part = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) == (x0, y0, x0 + side, y0 + side):
        return part
    return cv2.copyMakeBorder(part, cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1, cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, det: Detection, margin: float = 0.0) -> np.ndarray:
    """The gray, square, FER-framed crop of ``det`` (any size; the classifier resizes it to 48x48).

    Where the square leaves the frame its border pixels are repeated, so the face keeps its shape."""
    cx, cy, side = face_square(det, margin)
    s = max(2, int(round(side)))
    return to_gray(_square(image, int(round(cx - s / 2)), int(round(cy - s / 2)), s))
