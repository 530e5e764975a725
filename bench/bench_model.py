"""Classifier latency per face and model size: int8 vs float32 TFLite, 1 and 2 threads.

Measures models/emotion_int8.tflite and a float32 conversion of the same Keras model (made in a
temporary folder from the contract's source model when that file is here). Without the shipped
model it trains and converts the tiny test model instead, and the table says so.
"""
from __future__ import annotations

import platform
import tempfile
from pathlib import Path

import numpy as np

TITLE = "Emotion classifier: latency per face and size (int8 vs float32 TFLite)"

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "emotion_int8.tflite"
RUNS, WARMUP = 500, 50
THREADS = (1, 2)


def _faces() -> tuple[np.ndarray, str]:
    """Real FER test faces when ../shared is here (latency barely depends on content)."""
    from fer_edge.common.config import load_config
    from fer_edge.train.data import DataError, load_split
    cfg = load_config()
    try:
        test = load_split(cfg["data"], "test")
        return test.x[:64], "64 real FER-2013 test faces, cycled"
    except (DataError, OSError):
        return np.full((1, 48, 48), 128, np.uint8), "a mid-gray 48x48 input (FER-2013 not available)"


def _convert(keras_path: Path, precision: str, out_dir: Path, extra: dict | None = None) -> Path:
    from fer_edge.common.config import load_config
    from fer_edge.convert.pipeline import convert
    overrides = {"convert.model": str(keras_path), "convert.precision": precision,
                 "convert.output_dir": str(out_dir), "convert.eval_max_images": 500, **(extra or {})}
    return convert(load_config(None, list(overrides.items())), log=lambda *_: None).tflite


def _models(tmp: Path) -> tuple[list[tuple[str, Path]], str]:
    """[(label, .tflite)] to measure and a note on where they came from."""
    from fer_edge.common.contract import load_contract
    if SHIPPED.is_file():
        models = [("shipped int8", SHIPPED)]
        from fer_edge.common.config import resolve_path
        from fer_edge.common.contract import sha256_file
        source = load_contract(SHIPPED).raw.get("source", {})
        keras_name = source.get("keras_file", "")
        keras_file = resolve_path(keras_name) if keras_name else None
        if keras_file and keras_file.is_file() and sha256_file(keras_file) == source.get("keras_sha256"):
            models.append(("float32 of the same Keras model", _convert(keras_file, "float32", tmp)))
            return models, f"`{SHIPPED.relative_to(ROOT)}` and a float32 conversion of `{keras_name}`"
        return models, (f"`{SHIPPED.relative_to(ROOT)}` only (its Keras model {keras_name or '(unknown)'} "
                        "is not on this machine)")
    # No shipped model yet: the tiny test model (far smaller than the real one).
    from tests.conftest import FER_ROOT, TINY_CONVERT, tiny_config
    from fer_edge.train.fit import run
    run_dir = run(tiny_config(FER_ROOT, tmp), fresh=True)
    keras_path = run_dir / "model.keras"
    models = [("tiny int8", _convert(keras_path, "int8", tmp / "int8", {**TINY_CONVERT, "data.max_per_class": 150}))]
    models.append(("tiny float32", _convert(keras_path, "float32", tmp / "f32", {"data.max_per_class": 150})))
    return models, ("**the tiny test model** (models/emotion_int8.tflite is not there yet: these numbers say "
                    "nothing about the real model)")


def run() -> str:
    """Markdown: one row per model and thread count."""
    from fer_edge.common.contract import load_contract
    from fer_edge.common.interpreter import runtime_name, runtime_version
    from fer_edge.convert.verify import latency_ms
    with tempfile.TemporaryDirectory() as td:
        models, note = _models(Path(td))
        faces, faces_note = _faces()
        rows = ["| model | precision | size (KiB) | threads | median (ms) | p95 (ms) |", "|---|---|---|---|---|---|"]
        for label, path in models:
            c = load_contract(path)
            for n in THREADS:
                med, p95 = latency_ms(path, faces, num_threads=n, runs=RUNS, warmup=WARMUP)
                rows.append(f"| {label} | {c.precision} | {path.stat().st_size / 1024:.1f} | {n} | "
                            f"{med:.3f} | {p95:.3f} |")
    return "\n".join([
        f"Models: {note}. Runtime: {runtime_name()} {runtime_version()} on {platform.processor() or platform.machine()}. "
        f"One face per invoke (set_tensor + invoke + get_tensor), {RUNS} invocations after {WARMUP} "
        f"warm-up ones, on {faces_note}.", "", *rows, ""])
