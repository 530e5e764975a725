"""Teachers for distillation: the mean probabilities of one or more trained models (``.keras`` or the
converted ``.tflite``), softened by a temperature, as soft targets for a student.

With ``teacher.mirror`` each teacher's answer is the mean over the face and its mirror image: better
than either alone, and the same for a face and its mirror, as a target for a student that sees faces
mirrored at random by the augmentation. The teachers' outputs on the training faces are computed once
and cached in ``teacher.cache_dir`` under a key made from the faces, the labels, each teacher file's
content, the temperature and the mirror, so a distillation run (and every resumed sitting of it) costs
no more per epoch than an ordinary one.

``python -m fer_edge.train.teachers MODEL [MODEL ...] [--split val|test]`` measures each model and
their ensemble (mean of probabilities) on a split, with the committed protocol: choices on the
validation hold-out, the test split only for the report.
"""
from __future__ import annotations

import logging
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from fer_edge.common.config import TeacherConfig
from fer_edge.common.contract import sha256_file
from fer_edge.common.helptext import summary

log = logging.getLogger(__name__)

CACHE_VERSION = 2


def model_probs(path: Path, x: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(N,48,48) uint8 faces -> (N, labels) probabilities from a .keras or a .tflite model; with
    ``mirror``, the mean over each face and its mirror image (a model with the mirror inside already is)."""
    path = Path(path)
    if path.suffix == ".tflite":
        from fer_edge.common.model_runner import TfliteModel
        from fer_edge.common.contract import load_contract
        model = TfliteModel(path)
        predict = model.probs_batch
        mirror = mirror and not load_contract(path, verify_sha256=False).mirror_inside
    else:
        import keras

        from fer_edge.train.metrics import predict_probs
        from fer_edge.train.model import to_float32
        net = to_float32(keras.models.load_model(path, compile=False))
        predict = lambda faces: predict_probs(net, faces)      # noqa: E731
    probs: np.ndarray = predict(x).astype(np.float32)
    if mirror:
        probs = (probs + predict(np.ascontiguousarray(x[:, :, ::-1])).astype(np.float32)) / 2
    return probs


def saw_validation(path: Path) -> bool | None:
    """Did the model at ``path`` train on the validation hold-out too (a final fit)? None when unknown.
    Read from its run's state.json (a .keras in its run folder) or its contract (a converted .tflite)."""
    import json
    path = Path(path)
    try:
        if path.suffix == ".tflite":
            source = json.loads(path.with_suffix(".json").read_text()).get("source", {})
            if "val_images" in source:
                return source["val_images"] == 0
            path = Path(source.get("keras_file", ""))
        val = json.loads((path.parent / "state.json").read_text())["data"]["val"]
        return sum(val) == 0
    except (OSError, ValueError, KeyError, TypeError):
        return None


def validation_warning(path: Path) -> str | None:
    """A line for a teacher whose validation figures (and a student's) would be biased, else None."""
    seen = saw_validation(path)
    if seen:
        return (f"warning: {path} was trained on the validation hold-out too (a final fit): its validation "
                "accuracy, and a student's taught by it, read high; make choices with teachers trained without it")
    if seen is None:
        return f"note: {path}: cannot tell whether it trained on the validation hold-out (no run folder or contract says)"
    return None


def ensemble_probs(paths: list[Path], x: np.ndarray, mirror: bool = False) -> np.ndarray:
    return np.mean([model_probs(p, x, mirror) for p in paths], axis=0).astype(np.float32)


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T), renormalised: T > 1 spreads the probability over the other classes (dark knowledge)."""
    q = np.power(np.clip(probs, 1e-8, 1.0), 1.0 / temperature)
    return (q / q.sum(axis=1, keepdims=True)).astype(np.float32)


def soft_targets(x: np.ndarray, y: np.ndarray, tcfg: TeacherConfig, resolve) -> np.ndarray:
    """The ensemble's softened probabilities for faces ``x`` (labels ``y``), from the cache when it has
    them. ``tcfg`` is the ``teacher`` section; ``resolve`` turns its paths into files."""
    paths = [resolve(p) for p in tcfg.models]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"config key 'teacher.models': {p} not found: train the teacher first "
                                    "(make train) or remove it from the list")
    h = hashlib.sha256(f"teachers-v{CACHE_VERSION}-T{tcfg.temperature!r}-M{tcfg.mirror}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    for p in paths:
        h.update(sha256_file(p).encode())
    cache = resolve(tcfg.cache_dir) / f"soft-{h.hexdigest()[:24]}.npy"
    if cache.is_file():
        soft = np.load(cache)
        if soft.shape[0] == len(x):
            print(f"teachers: soft targets of {len(paths)} model(s) from the cache {cache}")
            return soft
    for p in paths:
        if (line := validation_warning(p)) is not None:
            print(line)
    print(f"teachers: computing the soft targets of {len(paths)} model(s) on {len(x)} faces (once; cached)")
    soft = soften(ensemble_probs(paths, x, tcfg.mirror), tcfg.temperature)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npy")
    np.save(tmp, soft)
    os.replace(tmp, cache)
    return soft


def main(argv: list[str] | None = None) -> int:
    import argparse

    from fer_edge import __version__
    from fer_edge.common.config import ConfigError, exit_on_config_error, load_config
    from fer_edge.train.data import DataError, load_configured
    from fer_edge.train.metrics import classification_report

    ap = argparse.ArgumentParser(prog="python -m fer_edge.train.teachers", description=summary(__doc__))
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("models", nargs="+", type=Path, help=".keras or .tflite files")
    ap.add_argument("--split", choices=("val", "test"), default="val", help="where to measure (default: val)")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--data", help="dataset root or fer2013.csv (overrides data.root)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. data.max_per_class=100")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, [*args.set, *([("data.root", str(Path(args.data).resolve()))] if args.data else [])])
    except ConfigError as exc:
        exit_on_config_error(exc)
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        log.error(f"not found: {', '.join(missing)}")
        return 2
    try:
        data = load_configured(cfg.data)
    except DataError as exc:
        log.error("%s", exc)
        return 2
    split = data.val if args.split == "val" else data.test
    if len(split) == 0:
        log.error("no validation split (data.val_fraction is 0): measure with --split test or a val_fraction")
        return 2
    if args.split == "val":
        for m in args.models:
            if (warning := validation_warning(m)) is not None:
                print(warning)
    runs = {m: (model_probs(m, split.x), model_probs(m, split.x, mirror=True)) for m in args.models}

    def line(probs: np.ndarray) -> str:
        r = classification_report(split.y, probs.argmax(1))
        return f"accuracy {r['accuracy'] * 100:.2f}%, macro-F1 {r['macro_f1']:.3f}"

    for m, (plain, mirrored) in runs.items():
        print(f"{m}: {line(plain)}; with the mirror {line(mirrored)}")
    if len(runs) > 1:
        plain, mirrored = (np.mean([p[i] for p in runs.values()], axis=0) for i in (0, 1))
        first = next(iter(runs.values()))[0].argmax(1)
        agree = np.mean([(p[0].argmax(1) == first).mean() for p in list(runs.values())[1:]])
        print(f"ensemble of {len(runs)} (mean of probabilities): {line(plain)}; with the mirror {line(mirrored)} "
              f"on {args.split} ({len(split)} faces); the others agree with the first on {agree * 100:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
