"""Parity of the converted model with the float Keras model, on real test faces.

The .tflite runs through ``common.interpreter`` one face at a time, its input quantised with the
model's own scale and zero point: exactly what the edge does. Metrics come from
``train.evaluate.classification_report`` so training and conversion report the same numbers.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from common.interpreter import dequantize, make_interpreter, quantize
from common.labels import LABELS


def tflite_predict(model_path: Path, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """(N,48,48) uint8 faces -> (N, labels) float probabilities from a .tflite model."""
    interp = make_interpreter(model_path, num_threads)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    in_dtype = np.dtype(inp["dtype"]).name
    probs = np.empty((len(x), int(out["shape"][-1])), np.float32)
    for i, face in enumerate(x):
        interp.set_tensor(inp["index"], quantize(face[None, :, :, None], in_dtype, in_scale, in_zp))
        interp.invoke()
        probs[i] = dequantize(interp.get_tensor(out["index"])[0], out_scale, out_zp)
    return probs


def summarize(report: dict) -> dict:
    """The contract's view of a classification_report: accuracy, macro-F1, per-class F1."""
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "per_class_f1": {name: report["per_class"][name]["f1"] for name in LABELS}}


def parity_metrics(y: np.ndarray, float_probs: np.ndarray, tflite_probs: np.ndarray, precision: str) -> dict:
    """Float and converted metrics on the same faces, their top-1 agreement and the accuracy drop."""
    from train.evaluate import classification_report
    pf, pq = float_probs.argmax(1), tflite_probs.argmax(1)
    f, q = summarize(classification_report(y, pf)), summarize(classification_report(y, pq))
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
    interp = make_interpreter(model_path, num_threads)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    in_dtype = np.dtype(inp["dtype"]).name
    batch = [quantize(f[None, :, :, None], in_dtype, in_scale, in_zp) for f in faces[:64]]
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        interp.set_tensor(inp["index"], batch[i % len(batch)])
        interp.invoke()
        interp.get_tensor(out["index"])
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))
