"""Shared, session-scoped fixtures: the real FER-2013 data, a tiny model trained on it, and that
model converted to int8 TFLite by our converter (with its contract).

Tests needing ../shared skip with a reason where it is absent (a user's machine).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FER_ROOT = SHARED / "data" / "fer2013"
MEDIA = SHARED / "media"
CACHE_DIR = ROOT / ".cache" / "fer2013"      # decoded arrays, shared by every test and `make train`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The tiny model: 7 x 150 real training faces (the val hold-out takes 10%), 8 short epochs without
# label smoothing, so it gives face-dependent predictions (3 epochs on 400 faces gave a constant
# model, which would make the parity tests meaningless) while training takes ~20-30 s here.
TINY_TRAIN = {
    "train.arch": "tiny", "train.bn_momentum": 0.9, "train.epochs": 8, "train.batch_size": 32,
    "train.warmup_epochs": 0, "train.learning_rate": 0.01, "train.precision": "float32",
    "train.verbose": 0, "train.augment.erasing_prob": 0.0, "train.class_weight": "none",
    "train.label_smoothing": 0.0, "train.dropout": 0.0, "data.max_per_class": 150,
    "train.augment.mixup_alpha": 0.0, "train.average_last": 0,   # a plain model for the conversion tests
    "data.labels": "fer2013",     # the 7 labels the converter and the edge know (config.yaml trains FER+'s 8)
}
# Its conversion: a small calibration set, all 956 capped test faces for verification, and a looser
# gate than config.yaml's. Why: the tiny net is barely better than chance and its softmax is nearly
# flat (median top-1 probability ~0.2, top-1/top-2 margin ~0.02 = 5 steps of the int8 output's 1/256
# resolution), so ~3.5% of faces tie or swap at int8 resolution (measured agreement 0.965-0.972)
# and the accuracy difference wobbles by about a point. A deliberately broken model still scores
# ~0.03 agreement, far below this gate; the committed model is held to config.yaml's 0.97 / 1.0.
TINY_CONVERT = {"convert.calibration_size": 140, "convert.eval_max_images": 0, "convert.mirror": False,
                "convert.min_agreement": 0.9, "convert.max_top1_drop": 3.0}


@pytest.fixture(scope="session")
def fer_root() -> Path:
    """Path of the real FER-2013 folders (../shared/data/fer2013), or skip."""
    if not (FER_ROOT / "train").is_dir() or not (FER_ROOT / "test").is_dir():
        pytest.skip(f"FER-2013 not available at {FER_ROOT} (../shared is only on developer/CI machines)")
    return FER_ROOT


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """Path of the real webcam clips (../shared/media), or skip."""
    if not MEDIA.is_dir():
        pytest.skip(f"test clips not available at {MEDIA} (../shared is only on developer/CI machines)")
    return MEDIA


def tiny_config(fer_root: Path, tmp: Path, **extra) -> dict:
    """The validated config used for the tiny model's training and conversion (runs and models in tmp)."""
    from fer_edge.common.config import load_config
    overrides = {**TINY_TRAIN, **TINY_CONVERT, "data.root": str(fer_root), "data.cache_dir": str(CACHE_DIR),
                 "train.runs_dir": str(tmp / "runs"), "convert.output_dir": str(tmp / "models"), **extra}
    return load_config(ROOT / "config.yaml", list(overrides.items()))


def as_final_fit(keras_model: Path, folder: Path) -> Path:
    """A copy of ``keras_model`` in ``folder`` whose run says it trained on the validation hold-out too
    (a final fit, data.val_fraction 0); the path of its model.keras."""
    import json
    import shutil
    folder.mkdir(parents=True)
    shutil.copy(keras_model, folder / "model.keras")
    state = json.loads((keras_model.parent / "state.json").read_text())
    state["data"]["val"] = [0] * 7
    (folder / "state.json").write_text(json.dumps(state))
    return folder / "model.keras"


@pytest.fixture(scope="session")
def tiny_keras_model(fer_root, tmp_path_factory) -> Path:
    """Path to model.keras of a tiny model (arch 'tiny') really trained for 8 epochs on 945 real
    FER training faces (1050 capped, minus the val hold-out) by train.fit.run(); its run directory has state.json status 'finished'."""
    from fer_edge.train.fit import run
    tmp = tmp_path_factory.mktemp("tiny_run")
    run_dir = run(tiny_config(fer_root, tmp), fresh=True)
    return run_dir / "model.keras"


@pytest.fixture(scope="session")
def tiny_tflite(fer_root, tiny_keras_model, tmp_path_factory) -> Path:
    """Path to emotion_int8.tflite converted from ``tiny_keras_model`` by convert.pipeline.convert
    (full int8, calibrated on real faces, parity gate passed); its contract emotion_int8.json sits
    next to it (common.contract.load_contract(path) reads it)."""
    from fer_edge.convert.pipeline import convert
    tmp = tmp_path_factory.mktemp("tiny_tflite")
    cfg = tiny_config(fer_root, tmp, **{"convert.model": str(tiny_keras_model)})
    return convert(cfg, log=lambda *_: None).tflite


@pytest.fixture(scope="session")
def mirrored_tflite(fer_root, tiny_keras_model, tmp_path_factory) -> Path:
    """``tiny_keras_model`` converted with convert.mirror=true: each face averaged with its mirror inside
    the model, one invoke."""
    from fer_edge.convert.pipeline import convert
    tmp = tmp_path_factory.mktemp("mirror")
    cfg = tiny_config(fer_root, tmp, **{"convert.model": str(tiny_keras_model), "convert.mirror": True})
    return convert(cfg, log=lambda *_: None).tflite
