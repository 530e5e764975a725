"""Evaluate a Keras model on a FER-2013 split: ``python -m fer_edge.train.evaluate`` (``make eval``).

Under FER+ labels (``data.labels: ferplus``) the split is scored by FER+'s majority protocol (all eight
classes, and the faces of FER-2013's seven for comparison with a 7-label model), and the test split also
by FER-2013's single labels; calibration is the expected calibration error (15 bins) and the mean
cross-entropy to the annotators' vote distribution. Writes report.json, report.md, confusion_matrix.png,
correct.png and misclassified.png.
"""
from __future__ import annotations

import logging
import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fer_edge.common.helptext import summary  # noqa: E402
from fer_edge.common.labels import LABELS  # noqa: E402
from fer_edge.train.metrics import (classification_report, cross_entropy, expected_calibration_error,  # noqa: E402
                                    predict_probs)


def _as_labels(probs: np.ndarray, k: int) -> np.ndarray:
    """A 7-label model scored against FER+'s eight: it never says contempt."""
    return probs if probs.shape[1] == k else np.pad(probs, ((0, 0), (0, k - probs.shape[1])))


def score_probs(probs: np.ndarray, split, flip: np.ndarray | None = None, split13=None,
                probs13: np.ndarray | None = None) -> dict:
    """The report of probabilities on a split (and, for FER+ labels, on the same test faces under FER-2013's)."""
    labels = tuple(split.labels)
    probs = _as_labels(probs, len(labels))
    pred = probs.argmax(1)
    report = classification_report(split.y, pred, labels)
    if flip is not None:
        report["accuracy_flip_tta"] = round(float(((probs + _as_labels(flip, len(labels))).argmax(1) == split.y).mean()), 4)
    report["ece_15"] = round(expected_calibration_error(probs, split.y), 4)
    if split.t is not None:
        report["cross_entropy_votes"] = round(cross_entropy(probs, split.t), 4)
        seven = split.y < len(LABELS)
        r7 = classification_report(split.y[seven], pred[seven], labels)
        r7["macro_f1"] = round(float(np.mean([r7["per_class"][n]["f1"] for n in LABELS])), 4)
        report["ferplus_seven_classes"] = {"accuracy": r7["accuracy"], "macro_f1": r7["macro_f1"], "n": r7["n"]}
    if split13 is not None and probs13 is not None:
        p13 = _as_labels(probs13, len(labels)).argmax(1)
        r13 = classification_report(split13.y, p13, labels)
        report["fer2013_labels"] = {"accuracy": r13["accuracy"], "n": r13["n"], "macro_f1": round(float(np.mean(
            [r13["per_class"][n]["f1"] for n in LABELS])), 4)}
    report["_pred"] = pred
    report["_conf"] = probs.max(1)
    return report


def evaluate_model(model, split, split_name: str = "test", split13=None) -> dict:
    """Score a Keras model on a split; ``split13``: the test faces under FER-2013's labels (FER+ runs)."""
    probs = predict_probs(model, split.x)
    flip = predict_probs(model, split.x[:, :, ::-1])
    probs13 = predict_probs(model, split13.x) if split13 is not None else None
    report = score_probs(probs, split, flip, split13, probs13)
    report["split"] = split_name
    return report


def write_report(report: dict, split, out_dir: Path) -> None:
    from fer_edge.train.plots import plot_confusion, plot_face_grid
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred, conf = report.pop("_pred"), report.pop("_conf")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    labels = report["labels"]
    protocol = " (FER+ majority protocol)" if "ferplus_seven_classes" in report else ""
    lines = [f"# Evaluation on {report['split']}", "",
             f"- images: {report['n']}{protocol}",
             f"- top-1 accuracy: **{report['accuracy'] * 100:.2f}%** "
             f"(with horizontal-flip test-time augmentation: {report['accuracy_flip_tta'] * 100:.2f}%)",
             f"- macro-F1: **{report['macro_f1']:.4f}**",
             f"- expected calibration error (15 bins): {report['ece_15']:.4f}"]
    if "ferplus_seven_classes" in report:
        r7 = report["ferplus_seven_classes"]
        lines += [f"- mean cross-entropy to the annotators' votes: {report['cross_entropy_votes']:.4f} nats",
                  f"- FER-2013's seven classes only ({r7['n']} faces): accuracy {r7['accuracy'] * 100:.2f}%, "
                  f"macro-F1 {r7['macro_f1']:.4f}"]
    if "fer2013_labels" in report:
        r13 = report["fer2013_labels"]
        lines.append(f"- under FER-2013's single labels ({r13['n']} faces): accuracy {r13['accuracy'] * 100:.2f}%, "
                     f"macro-F1 {r13['macro_f1']:.4f}")
    lines.append("")
    if "run" in report:
        lines += ["Run: " + ", ".join(f"{k}={v}" for k, v in report["run"].items()), ""]
    lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, m in report["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![correct](correct.png)", "",
              "![misclassified](misclassified.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    cm = np.asarray(report["confusion_matrix"])
    plot_confusion(cm, labels, out_dir / "confusion_matrix.png",
                   f"acc {report['accuracy'] * 100:.1f}%, macro-F1 {report['macro_f1']:.3f} (row-normalised)")
    rng = np.random.default_rng(0)
    for name, mask in (("correct", pred == split.y), ("misclassified", pred != split.y)):
        idx = np.flatnonzero(mask)
        idx = rng.choice(idx, size=min(32, idx.size), replace=False) if idx.size else idx
        titles = [f"true {labels[split.y[i]]}\npred {labels[pred[i]]} {conf[i]:.2f}" for i in idx]
        plot_face_grid(split.x[idx], titles, out_dir / f"{name}.png", f"{name} test faces")


def main(argv: list[str] | None = None) -> int:
    from fer_edge.common.config import ConfigError, display_path, exit_on_config_error, load_config, resolve_path
    from fer_edge.train.data import DataError, load_split
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.evaluate", description=summary(__doc__))
    ap.add_argument("--model", required=True, help="a .keras model")
    ap.add_argument("--data", help="dataset root or fer2013.csv (default: data.root)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--labels", choices=("fer2013", "ferplus"), help="score against these labels (default: data.labels)")
    ap.add_argument("--out", help="output folder (default: eval-<split> next to the model)")
    ap.add_argument("--config", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as exc:
        exit_on_config_error(exc)
    model_path = Path(args.model)
    if not model_path.is_file():
        log.error(f"model {model_path} not found; pass MODEL=runs/<run>/model.keras")
        return 2
    d = replace(cfg.data, labels=args.labels) if args.labels else cfg.data
    root = Path(args.data).resolve() if args.data else resolve_path(d.root)
    try:
        split, split13 = load_split(d, args.split, root, with_fer2013=True)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    import keras
    from fer_edge.train.model import to_float32
    try:
        model = to_float32(keras.models.load_model(model_path, compile=False))
    except Exception as exc:  # noqa: BLE001 - keras raises many kinds
        log.error(f"cannot load Keras model {model_path}: {exc}")
        return 2
    out = Path(args.out) if args.out else model_path.parent / f"eval-{args.split}"
    report = evaluate_model(model, split, split_name=f"{args.split} ({display_path(root)})", split13=split13)
    report["model"] = display_path(model_path)
    write_report(report, split, out)
    print(f"{args.split}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} "
          f"(flip TTA {report['accuracy_flip_tta']:.4f}); report in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
