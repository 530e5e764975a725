"""Classifier latency per face and model size: int8 vs float32 TFLite, 1 and 2 threads; the cost of
the mirror inside the model.

Measures models/emotion_int8.tflite and a float32 conversion of the same Keras model (made in a
temporary folder from the contract's source model when that file is here). Without the shipped
model it trains and converts the tiny test model instead, and the table says so.

The mirror's cost (``convert.mirror``): the ``default`` architecture converted to full int8 twice,
plain and with the mirror inside (a batch of two in one invoke), timed alternately in the same run.
Its weights are as initialised: an int8 model does the same integer work whatever its weights.
Target: the per-face budget of 0.6 ms with one thread was set when the plain model took 0.28 ms here;
core speeds differ between machines and days, so it is checked as a ratio to the plain model in the
same run: at most 0.6 / 0.28 = 2.14x.
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
MIRROR_ROUNDS = 3
BUDGET_MS, BUDGET_PLAIN_MS = 0.6, 0.28      # the budget, and the plain model's time when it was set
MAX_RATIO = BUDGET_MS / BUDGET_PLAIN_MS


def _faces() -> tuple[np.ndarray, str]:
    """Real FER test faces when ../shared is here (latency barely depends on content)."""
    from fer_edge.common.config import load_config
    from fer_edge.train.data import DataError, load_split
    cfg = load_config()
    try:
        test = load_split(cfg.data, "test")
        return test.x[:64], "64 real FER-2013 test faces, cycled"
    except (DataError, OSError):
        return np.full((1, 48, 48), 128, np.uint8), "a mid-gray 48x48 input (FER-2013 not available)"


def _convert(keras_path: Path, precision: str, out_dir: Path, extra: dict | None = None) -> Path:
    from fer_edge.common.config import load_config
    from fer_edge.convert.conversion import convert
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
    from bench.tiny_model import FER_ROOT, TINY_CONVERT, tiny_config
    from fer_edge.train.fit import run
    run_dir = run(tiny_config(FER_ROOT, tmp), fresh=True)
    keras_path = run_dir / "model.keras"
    models = [("tiny int8", _convert(keras_path, "int8", tmp / "int8", {**TINY_CONVERT, "data.max_per_class": 150}))]
    models.append(("tiny float32", _convert(keras_path, "float32", tmp / "f32", {"data.max_per_class": 150})))
    return models, ("**the tiny test model** (models/emotion_int8.tflite is not there yet: these numbers say "
                    "nothing about the real model)")


def _mirror_section(faces: np.ndarray, tmp: Path) -> list[str]:
    """Plain vs mirror-inside int8 `default`, alternated MIRROR_ROUNDS times per thread count."""
    from fer_edge.common.config import load_config, resolve_path
    from fer_edge.convert.calibration import load_calibration
    from fer_edge.convert.errors import ConvertInputError
    from fer_edge.convert.mirror import with_mirror_average
    from fer_edge.convert.quantize import to_tflite
    from fer_edge.convert.verify import latency_ms
    from fer_edge.train.data import DataError
    from fer_edge.train.model import build_model
    cfg = load_config()
    try:
        calib = load_calibration(cfg.data, resolve_path(cfg.data.root), 200).x
        calib_note = "200 FER-2013 training faces"
    except (DataError, OSError, ConvertInputError):
        calib, calib_note = np.random.default_rng(0).integers(0, 256, (200, 48, 48), np.uint8), "200 noise images"
    net = build_model("default", 0.3, 0.99)
    paths = {}
    for label, model in (("plain", net), ("mirror inside", with_mirror_average(net))):
        paths[label] = tmp / f"{label.replace(' ', '_')}.tflite"
        paths[label].write_bytes(to_tflite(model, "int8", calib))
    times: dict[tuple[str, int], list[float]] = {}
    for n in THREADS:
        for _ in range(MIRROR_ROUNDS):
            for label, path in paths.items():
                times.setdefault((label, n), []).append(latency_ms(path, faces, num_threads=n, runs=RUNS, warmup=WARMUP)[0])
    rows = [f"| default, int8 | threads | median per face (ms), each round | median (ms) | vs plain | within {MAX_RATIO:.2f}x |",
            "|---|---|---|---|---|---|"]
    for n in THREADS:
        base = float(np.median(times[("plain", n)]))
        for label in paths:
            t = times[(label, n)]
            med = float(np.median(t))
            ok = "" if n != 1 or label == "plain" else ("yes" if med / base <= MAX_RATIO else "**no**")
            rows.append(f"| {label} | {n} | {', '.join(f'{v:.3f}' for v in t)} | **{med:.3f}** | {med / base:.2f}x | {ok} |")
    return ["", "### The mirror inside the model (`convert.mirror`)", "",
            f"The `default` architecture converted to full int8 (calibrated on {calib_note}) plain and with the "
            f"mirror inside (the face and its mirror as a batch of two, averaged in the graph), timed alternately "
            f"in {MIRROR_ROUNDS} rounds of {RUNS} invocations. Target: at most {BUDGET_MS} ms per face with one "
            f"thread, set when the plain model took {BUDGET_PLAIN_MS} ms; as core speed varies between machines, it "
            f"is checked as a ratio in the same run: at most {MAX_RATIO:.2f}x the plain model.", "", *rows]


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
                rows.append(f"| {label}{' (mirror inside)' if c.mirror_inside else ''} | {c.precision} | {path.stat().st_size / 1024:.1f} | {n} | "
                            f"{med:.3f} | {p95:.3f} |")
        mirror = _mirror_section(faces, Path(td))
    return "\n".join([
        f"Models: {note}. Runtime: {runtime_name()} {runtime_version()} on {platform.processor() or platform.machine()}. "
        f"One face per invoke (set_tensor + invoke + get_tensor), {RUNS} invocations after {WARMUP} "
        f"warm-up ones, on {faces_note}.", "", *rows, *mirror, ""])
