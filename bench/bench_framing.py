"""How each detector's box relates to FER-2013's framing: the numbers behind ``edge.framing.FRAMINGS``.

FER-2013 faces are 48x48 squares cut by the dataset's own detector. Each training face (a seeded
sample, every class) is upscaled 3x to 144 px and pasted, with its border pixels repeated outward,
into the middle of a 432x432 canvas; the backend runs on the canvas, and the box nearest the centre
gives scale = 144 / box width and the offset of the face square's centre from the box's centre in
box widths. The medians are the mapping. This is exact for Haar's frontal box. BlazeFace finds
fewer of these blurred, tightly cut faces and draws a larger box on them than on real photos, so
its mapping is also fitted against Haar's FER-mapped square on kdef-dev's straight photos (real
photos, both detectors confident); the committed values come from that fit, with the centre's x
taken from the landmarks and the final scale/offset chosen on kdef-dev's whole-pipeline accuracy.
The profile cascade rarely fires on FER's mostly frontal faces, so its mapping is fitted against
BlazeFace's FER-mapped square on kdef-dev's turned (half-left and half-right) photos, mirrored
boxes folded onto the unmirrored ones.
"""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np

from fer_edge.common.labels import LABELS

TITLE = "Crop framing: each detector's box mapped onto the FER-2013 face square"
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FER_TRAIN = SHARED / "fer2013" / "train"
KDEF = SHARED / "kdef-dev"
PER_CLASS = 150
UP, CANVAS = 144, 432


def fer_sample(per_class: int = PER_CLASS, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    out = []
    for label in LABELS:
        files = sorted((FER_TRAIN / label).glob("*.jpg"))
        out += rng.sample(files, min(per_class, len(files)))
    return out


def on_canvas(face48: np.ndarray) -> np.ndarray:
    up = cv2.resize(face48, (UP, UP), interpolation=cv2.INTER_CUBIC)
    pad = (CANVAS - UP) // 2
    return cv2.cvtColor(cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)


def fit_fer(detector, files: list[Path]) -> tuple[dict[str, tuple[float, float, float]], dict[str, int]]:
    """Per framing name: the median (scale, dx, dy), and how many faces gave it."""
    c = CANVAS / 2
    samples: dict[str, list] = {}
    for f in files:
        dets = detector.detect(on_canvas(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)))
        if not dets:
            continue
        d = min(dets, key=lambda d: (d.box.x + d.box.w / 2 - c) ** 2 + (d.box.y + d.box.h / 2 - c) ** 2)
        b = d.box
        name, sign = (d.framing[:-9], -1) if d.framing.endswith("_mirrored") else (d.framing, 1)
        samples.setdefault(name, []).append((UP / b.w, sign * (c - (b.x + b.w / 2)) / b.w, (c - (b.y + b.h / 2)) / b.w))
    return {k: tuple(float(x) for x in np.median(v, axis=0)) for k, v in samples.items()}, \
           {k: len(v) for k, v in samples.items()}


def fit_against(reference, detector, pattern: str, framing: str) -> tuple[tuple[float, float, float], int]:
    """``detector``'s boxes of kind ``framing`` against ``reference``'s FER square on kdef-dev photos."""
    from fer_edge.edge.framing import face_square
    rows = []
    for f in sorted(KDEF.glob(pattern)):
        img = cv2.imread(str(f))
        ref = reference.detect(img)
        dets = [d for d in detector.detect(img) if d.framing.startswith(framing)]
        if not ref or not dets:
            continue
        cx, cy, side = face_square(ref[0])
        b, sign = dets[0].box, (-1 if dets[0].framing.endswith("_mirrored") else 1)
        rows.append((side / b.w, sign * (cx - (b.x + b.w / 2)) / b.w, (cy - (b.y + b.h / 2)) / b.w))
    return tuple(float(x) for x in np.median(rows, axis=0)) if rows else (float("nan"),) * 3, len(rows)


def run() -> str:
    if not FER_TRAIN.is_dir() or not KDEF.is_dir():
        return f"Skipped: FER-2013 ({FER_TRAIN}) or kdef-dev ({KDEF}) is not available here."
    from fer_edge.common.config import load_config
    from fer_edge.edge.detect import make_detector
    from fer_edge.edge.framing import FRAMINGS
    def det_cfg(*sets: tuple[str, object]):
        return load_config(None, list(sets)).edge.detector
    files = fer_sample()
    haar = make_detector(det_cfg(("edge.detector.backend", "haar"), ("edge.detector.haar.profile", True)))
    blaze = make_detector(det_cfg(("edge.detector.backend", "blazeface")))
    frontal = make_detector(det_cfg(("edge.detector.backend", "haar"), ("edge.detector.haar.profile", False)))
    rows = ["| framing | fitted on | faces | scale | dx | dy | in fer_edge/edge/framing.py |", "|---|---|---|---|---|---|---|"]

    def row(name: str, how: str, n: str, fit) -> None:
        f = FRAMINGS[name]
        have = f"{f.scale:.3f}, {f.dx:+.3f}, {f.dy:+.3f}" + (" (x from landmarks)" if f.landmark_x else "")
        rows.append(f"| {name} | {how} | {n} | {fit[0]:.3f} | {fit[1]:+.3f} | {fit[2]:+.3f} | {have} |")

    for det in (frontal, blaze):
        fit, n = fit_fer(det, files)
        for name in fit:
            row(name, "FER-2013 training faces on a canvas", f"{n[name]} of {len(files)}", fit[name])
    fit, n = fit_against(frontal, blaze, "*/*S.JPG", "blazeface")
    row("blazeface", "kdef-dev straight photos, against haar's FER square", str(n), fit)
    fit, n = fit_against(blaze, haar, "*/*H[LR].JPG", "haar_profile")
    row("haar_profile", "kdef-dev turned photos, against blazeface's FER square", str(n), fit)
    return ("Medians of the box -> FER square mapping (side = scale x box width; centre offset in box widths, "
            "+x right, +y down), and the mapping `fer_edge/edge/framing.py` uses.\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    print(run())
