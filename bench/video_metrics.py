"""Label steadiness on video, measured from an emotion log: flicker and responsiveness.

- flicker: label changes per 100 rows of one tracked face (the face_id with the most rows).
- responsiveness: on a built clip that cuts from a FER-2013 face of one class to a face of another
  class, the frames from the cut until the logged label reaches the label the log settles on for
  the new face, and stays there. 25 fps, so 8 frames = 0.32 s.

The cut clip is made from real PublicTest faces (the first, by file name, of each class that every
detector backend finds and the shipped model reads confidently on its own), upscaled and placed in a
400x300 frame with a little sensor noise per frame, and written as an MJPEG .avi.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from fer_edge.common.labels import LABELS

ROOT = Path(__file__).resolve().parent.parent
FER_TEST = ROOT.parent / "shared" / "data" / "fer2013" / "test"
# (from, to) classes of the cuts: common changes of expression in front of a camera.
CUTS = (("neutral", "happy"), ("happy", "surprise"), ("surprise", "neutral"), ("neutral", "sad"),
        ("sad", "angry"), ("angry", "neutral"))
SEGMENT = 50                  # frames per face (2 s at 25 fps)
FPS = 25
SIZE, FACE = (400, 300), 150


def read_rows(log: Path) -> list[dict]:
    with open(log, newline="") as fh:
        return list(csv.DictReader(fh))


def main_track(rows: list[dict]) -> list[dict]:
    """Rows of the face seen longest (the face_id with the most rows), in order."""
    if not rows:
        return []
    fid = Counter(r["face_id"] for r in rows).most_common(1)[0][0]
    return [r for r in rows if r["face_id"] == fid]


def flicker(rows: list[dict]) -> float:
    """Label changes per 100 rows of the face seen longest."""
    track = main_track(rows)
    if len(track) < 2:
        return 0.0
    changes = sum(a["emotion"] != b["emotion"] for a, b in zip(track, track[1:]))
    return 100.0 * changes / (len(track) - 1)


def label_shares(rows: list[dict]) -> dict[str, float]:
    c = Counter(r["emotion"] for r in rows)
    n = max(1, sum(c.values()))
    return {k: 100.0 * c[k] / n for k in LABELS if c[k]}


def frame_on_canvas(face48: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 gray face upscaled into the middle of a gray 400x300 BGR frame, with sensor noise."""
    w, h = SIZE
    frame = np.full((h, w), 120, np.float32)
    x0, y0 = (w - FACE) // 2, (h - FACE) // 2
    frame[y0:y0 + FACE, x0:x0 + FACE] = cv2.resize(face48, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    frame += rng.normal(0, 2.0, frame.shape)
    return cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def pick_faces(pipelines: list) -> dict[str, np.ndarray]:
    """Per class of CUTS, the first PublicTest face that every pipeline (one per backend) finds in
    each of 5 noisy frames and reads as that class with probability >= 0.6 (photos: no smoothing)."""
    rng = np.random.default_rng(0)
    out = {}
    for label in sorted({c for cut in CUTS for c in cut}):
        for f in sorted((FER_TEST / label).glob("*.jpg")):
            face = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            reads = [p.analyze_image(frame_on_canvas(face, rng)) for p in pipelines for _ in range(5)]
            if all(len(r) == 1 and r[0].label == label and r[0].confidence >= 0.6 for r in reads):
                out[label] = face
                break
        else:
            raise RuntimeError(f"no PublicTest face of class {label} is read confidently")
    return out


def write_cut_clip(path: Path, faces: dict[str, np.ndarray]) -> list[int]:
    """Write the cut clip; returns the frame index of each cut."""
    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    order = [CUTS[0][0]] + [b for _, b in CUTS]
    cuts, n = [], 0
    for i, label in enumerate(order):
        if i:
            cuts.append(n)
        for _ in range(SEGMENT):
            writer.write(frame_on_canvas(faces[label], rng))
            n += 1
    writer.release()
    return cuts


def responsiveness(rows: list[dict], cuts: list[int]) -> list[int]:
    """Per cut: frames until the logged label reaches, and keeps, the label of the segment's end
    (frames where the detector missed the face have no row and neither break nor end the run)."""
    by_frame = {int(r["frame"]): r["emotion"] for r in main_track(rows)}
    out = []
    for k, cut in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else cut + SEGMENT
        logged = [(i, by_frame[i]) for i in range(cut, end) if i in by_frame]
        lag = SEGMENT
        for i, label in reversed(logged):
            if label != logged[-1][1]:
                break
            lag = i - cut
        out.append(lag)
    return out
