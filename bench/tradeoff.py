"""The trade-off between the annotators' consensus and clear expressions, along the logit adjustment.

``python -m bench.tradeoff runs/<run>/model.keras [--out docs/img/tradeoff.png]`` scores a trained Keras
model (float, each face averaged with its mirror, as the edge does for photos) for each logit adjustment
tau on a grid (the logits minus tau x log(the training prior), ``convert.logit_adjust``):

- FER+ validation: the hold-out carved from train/, scored by FER+'s majority protocol (never test/);
- kdef-dev: the largest face of each of the 1,426 photos as the whole pipeline frames it (the configured
  detector, a full detection, the FER-framed crop), right %, and the recall of each expression.

It prints the table (markdown) and draws the curve; choosing a tau to convert with is up to the reader:
``make tflite ARGS="--set convert.logit_adjust=TAU"``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fer_edge.common.config import DetectorConfig

ROOT = Path(__file__).resolve().parent.parent
KDEF = ROOT.parent / "shared" / "data" / "kdef-dev"
TAUS = tuple(round(t, 2) for t in np.arange(-0.5, 1.51, 0.1))


def kdef_faces(det_cfg: DetectorConfig, margin: float) -> tuple[np.ndarray, list[str], list[str]]:
    """(N,48,48) crops of the largest face of every kdef-dev photo with one, their labels, and the
    photos without a face."""
    import cv2

    from fer_edge.common.preprocess import INPUT_SIZE, preprocess_face
    from fer_edge.edge.detect import make_detector
    from fer_edge.edge.framing import crop_face
    det = make_detector(det_cfg)
    crops, labels, missed = [], [], []
    for f in sorted(KDEF.glob("*/*.JPG")):
        image = cv2.imread(str(f))
        found = det.detect(image, thorough=True) if image is not None else []
        if not found:
            missed.append(f.name)
            continue
        best = max(found, key=lambda d: d.box.area)
        crops.append(preprocess_face(crop_face(image, best, margin), INPUT_SIZE))
        labels.append(f.parent.name)
    return np.stack(crops), labels, missed


def score(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict:
    from fer_edge.train.metrics import classification_report
    r = classification_report(y, probs.argmax(1), labels)
    return {"acc": 100 * r["accuracy"], "f1": r["macro_f1"],
            "recall": {n: 100 * m["recall"] for n, m in r["per_class"].items() if m["support"]}}


def sweep(model, val, kdef_x: np.ndarray, kdef_y: np.ndarray, n_photos: int, counts, labels, taus=TAUS) -> list[dict]:
    """One row per tau: FER+ validation and kdef-dev scores of the model with that logit adjustment."""
    from fer_edge.convert.output_adjust import adjusted_mean, log_prior_of
    from fer_edge.train.metrics import predict_probs
    lp = log_prior_of(counts)
    views = {k: [predict_probs(model, x), predict_probs(model, np.ascontiguousarray(x[:, :, ::-1]))]
             for k, x in (("val", val.x), ("kdef", kdef_x))}
    rows = []
    for tau in taus:
        v = score(adjusted_mean(views["val"], lp, tau), val.y, labels)
        k = score(adjusted_mean(views["kdef"], lp, tau), kdef_y, labels)
        k["acc"] *= len(kdef_y) / n_photos                    # photos without a face count as wrong
        rows.append({"tau": float(tau), "val_acc": v["acc"], "val_f1": v["f1"], "kdef_acc": k["acc"],
                     "kdef_recall": k["recall"], "kdef_min_recall": min(k["recall"].values())})
    return rows


def table(rows: list[dict]) -> str:
    names = list(rows[0]["kdef_recall"])
    out = ["| tau | FER+ val top-1 % | FER+ val macro-F1 | kdef-dev right % | kdef-dev recall %: "
           + " / ".join(names) + " |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['tau']:+.1f} | {r['val_acc']:.2f} | {r['val_f1']:.3f} | {r['kdef_acc']:.1f} | "
                   + " / ".join(f"{r['kdef_recall'][n]:.0f}" for n in names) + " |")
    return "\n".join(out)


def plot(rows: list[dict], out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs, ys = [r["val_acc"] for r in rows], [r["kdef_acc"] for r in rows]
    ax.plot(xs, ys, "-o", ms=3, color="#0072B2")
    for r in rows:
        if abs(r["tau"] * 2 - round(r["tau"] * 2)) < 1e-6:       # label every 0.5
            ax.annotate(f"tau {r['tau']:+.1f}", (r["val_acc"], r["kdef_acc"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("FER+ validation top-1 % (majority protocol)")
    ax.set_ylabel("kdef-dev photos right % (whole-pipeline crops)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Score a trained model along the logit adjustment on FER+ validation and kdef-dev."""
    ap = argparse.ArgumentParser(prog="python -m bench.tradeoff", description=main.__doc__)
    ap.add_argument("model", type=Path, help="runs/<run>/model.keras")
    ap.add_argument("--out", type=Path, help="the curve as a PNG (default: beside the model)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if not KDEF.is_dir():
        print(f"error: {KDEF} is missing (../shared is only on developer and CI machines)", file=sys.stderr)
        return 2
    import keras

    from fer_edge.common.config import load_config
    from fer_edge.convert.source import run_info
    from fer_edge.train.data import load_split
    from fer_edge.train.model import to_float32
    info = run_info(args.model)
    labels = tuple(info.get("labels") or ())
    cfg = load_config(None, [("data.labels", "ferplus" if "contempt" in labels else "fer2013")])
    val = load_split(cfg.data, "val")
    model = to_float32(keras.models.load_model(args.model, compile=False))
    x, names, missed = kdef_faces(cfg.edge.detector, cfg.edge.detector.margin)
    y = np.array([val.labels.index(n) for n in names])
    rows = sweep(model, val, x, y, len(names) + len(missed), info["train_counts"], val.labels)
    print(f"{args.model}: {len(val)} FER+ validation faces, {len(names) + len(missed)} kdef-dev photos "
          f"({len(missed)} without a face, counted wrong), detector {cfg.edge.detector.backend}\n")
    print(table(rows))
    plot(rows, args.out or args.model.parent / "tradeoff.png", f"{args.model.parent.name}: logit adjustment tau")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
