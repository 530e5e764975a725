"""Evaluate a Keras model on a FER-2013 split: ``python -m fer_edge.train.evaluate`` (``make eval``).

Writes report.json, report.md, confusion_matrix.png, correct.png and misclassified.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fer_edge.common.helptext import summary  # noqa: E402
from fer_edge.common.labels import LABELS  # noqa: E402
from fer_edge.train.metrics import classification_report, predict_probs  # noqa: E402


def evaluate_model(model, split, split_name: str = "test") -> dict:
    probs = predict_probs(model, split.x)
    pred = probs.argmax(1)
    report = classification_report(split.y, pred)
    flip = predict_probs(model, split.x[:, :, ::-1])
    report["accuracy_flip_tta"] = round(float(((probs + flip).argmax(1) == split.y).mean()), 4)
    report["split"] = split_name
    report["_pred"] = pred
    report["_conf"] = probs.max(1)
    return report


def write_report(report: dict, split, out_dir: Path) -> None:
    from fer_edge.train.plots import plot_confusion, plot_face_grid
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred, conf = report.pop("_pred"), report.pop("_conf")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Evaluation on {report['split']}", "",
             f"- images: {report['n']}",
             f"- top-1 accuracy: **{report['accuracy'] * 100:.2f}%** "
             f"(with horizontal-flip test-time augmentation: {report['accuracy_flip_tta'] * 100:.2f}%)",
             f"- macro-F1: **{report['macro_f1']:.4f}**", ""]
    if "run" in report:
        lines += ["Run: " + ", ".join(f"{k}={v}" for k, v in report["run"].items()), ""]
    lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, m in report["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for name, row in zip(LABELS, report["confusion_matrix"]):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![correct](correct.png)", "",
              "![misclassified](misclassified.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    cm = np.asarray(report["confusion_matrix"])
    plot_confusion(cm, out_dir / "confusion_matrix.png",
                   f"acc {report['accuracy'] * 100:.1f}%, macro-F1 {report['macro_f1']:.3f} (row-normalised)")
    rng = np.random.default_rng(0)
    for name, mask in (("correct", pred == split.y), ("misclassified", pred != split.y)):
        idx = np.flatnonzero(mask)
        idx = rng.choice(idx, size=min(32, idx.size), replace=False) if idx.size else idx
        titles = [f"true {LABELS[split.y[i]]}\npred {LABELS[pred[i]]} {conf[i]:.2f}" for i in idx]
        plot_face_grid(split.x[idx], titles, out_dir / f"{name}.png", f"{name} test faces")


def main(argv: list[str] | None = None) -> int:
    from fer_edge.common.config import ConfigError, display_path, exit_on_config_error, load_config, resolve_path
    from fer_edge.train.data import DataError, load_split
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.evaluate", description=summary(__doc__))
    ap.add_argument("--model", required=True, help="a .keras model")
    ap.add_argument("--data", help="dataset root or fer2013.csv (default: data.root)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
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
        print(f"error: model {model_path} not found; pass MODEL=runs/<run>/model.keras", file=sys.stderr)
        return 2
    d = cfg["data"]
    root = Path(args.data).resolve() if args.data else resolve_path(d["root"])
    try:
        split = load_split(d, args.split, root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import keras
    from fer_edge.train.model import to_float32
    try:
        model = to_float32(keras.models.load_model(model_path, compile=False))
    except Exception as exc:  # noqa: BLE001 - keras raises many kinds
        print(f"error: cannot load Keras model {model_path}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else model_path.parent / f"eval-{args.split}"
    report = evaluate_model(model, split, split_name=f"{args.split} ({display_path(root)})")
    report["model"] = display_path(model_path)
    write_report(report, split, out)
    print(f"{args.split}: accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} "
          f"(flip TTA {report['accuracy_flip_tta']:.4f}); report in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
