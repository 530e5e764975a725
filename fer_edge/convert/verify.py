"""Parity of the converted model with the float Keras model, on real test faces.

The .tflite runs through ``common.interpreter`` one face at a time, its input quantised with the
model's own scale and zero point: exactly what the edge does. Metrics come from
``train.evaluate.classification_report`` so training and conversion report the same numbers.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fer_edge.common.model_runner import TfliteModel


def tflite_predict(model_path: Path, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """(N,48,48) uint8 faces -> (N, labels) float probabilities, run exactly as the edge runs the model."""
    return TfliteModel(model_path, threads=num_threads).probs_batch(x)


def summarize(report: dict, suffix: str = "") -> dict:
    """The contract's view of a classification_report: accuracy, macro-F1, per-class F1 (each key + suffix)."""
    return {f"accuracy{suffix}": report["accuracy"], f"macro_f1{suffix}": report["macro_f1"],
            f"per_class_f1{suffix}": {name: report["per_class"][name]["f1"] for name in report["labels"]}}


def mirrored(x: np.ndarray) -> np.ndarray:
    """(N,H,W) faces -> their horizontal mirror images (contiguous, ready for the interpreter)."""
    return np.ascontiguousarray(x[:, :, ::-1])


def _scores(y: np.ndarray, probs: np.ndarray, flip_probs: np.ndarray | None, labels: tuple[str, ...],
            targets: np.ndarray | None) -> dict:
    """Single-pass metrics, plus ``*_flip_tta`` ones (mean of a face's and its mirror's probabilities), and the
    calibration: expected calibration error (15 bins) and, with the targets, the cross-entropy to them."""
    from fer_edge.train.metrics import classification_report, cross_entropy, expected_calibration_error
    out = summarize(classification_report(y, probs.argmax(1), labels))
    out["ece_15"] = round(expected_calibration_error(probs, y), 4)
    if targets is not None:
        out["cross_entropy_targets"] = round(cross_entropy(probs, targets), 4)
    if flip_probs is not None:
        out.update(summarize(classification_report(y, ((probs + flip_probs) / 2).argmax(1), labels), "_flip_tta"))
    return out


def parity_metrics(y: np.ndarray, float_probs: np.ndarray, tflite_probs: np.ndarray, precision: str,
                   float_flip_probs: np.ndarray | None = None, tflite_flip_probs: np.ndarray | None = None,
                   labels: tuple[str, ...] = (), targets: np.ndarray | None = None) -> dict:
    """Float and converted metrics on the same faces, their top-1 agreement and the accuracy drop.

    With the probabilities of the mirrored faces too, each side also gets flip-TTA metrics; the
    agreement and the drop (the parity gate) stay single-pass top-1.
    """
    pf, pq = float_probs.argmax(1), tflite_probs.argmax(1)
    labels = labels or tuple(str(i) for i in range(float_probs.shape[1]))
    f = _scores(y, float_probs, float_flip_probs, labels, targets)
    q = _scores(y, tflite_probs, tflite_flip_probs, labels, targets)
    return {"test_images": int(y.size), "float": f, precision: q,
            "top1_agreement": round(float((pf == pq).mean()), 4),
            "top1_drop_points": round((f["accuracy"] - q["accuracy"]) * 100, 2)}


def gate_failures(metrics: dict, max_top1_drop: float, min_agreement: float) -> list[str]:
    """Why the converted model must not ship (empty list = it may)."""
    problems = []
    if metrics["top1_drop_points"] > max_top1_drop:
        problems.append(f"top-1 accuracy dropped {metrics['top1_drop_points']:.2f} points "
                        f"(allowed: convert.max_top1_drop = {max_top1_drop})")
    if metrics["top1_agreement"] < min_agreement:
        problems.append(f"top-1 agreement with the float model is {metrics['top1_agreement']:.4f} "
                        f"(required: convert.min_agreement = {min_agreement})")
    return problems


def latency_ms(model_path: Path, faces: np.ndarray, num_threads: int = 1, runs: int = 300,
               warmup: int = 20) -> tuple[float, float]:
    """(median, p95) milliseconds of one set_tensor + invoke + get_tensor on real faces."""
    model = TfliteModel(model_path, threads=num_threads)
    batch = [model.quantize(f) for f in faces[:64]]
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        model.run(batch[i % len(batch)])
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))
