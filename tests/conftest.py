"""Shared, session-scoped fixtures: the real FER-2013 data, a tiny model trained on it, and that
model converted to int8 TFLite by our converter (with its contract).

Tests needing ../shared skip with a reason where it is absent (a user's machine).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.tiny_model import CACHE_DIR, FER_ROOT, MEDIA, ROOT, SHARED, TINY_CONVERT, TINY_TRAIN, tiny_config

__all__ = ["CACHE_DIR", "FER_ROOT", "MEDIA", "ROOT", "SHARED", "TINY_CONVERT", "TINY_TRAIN", "tiny_config"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    """Path to emotion_int8.tflite converted from ``tiny_keras_model`` by convert.conversion.convert
    (full int8, calibrated on real faces, parity gate passed); its contract emotion_int8.json sits
    next to it (common.contract.load_contract(path) reads it)."""
    from fer_edge.convert.conversion import convert
    tmp = tmp_path_factory.mktemp("tiny_tflite")
    cfg = tiny_config(fer_root, tmp, **{"convert.model": str(tiny_keras_model)})
    return convert(cfg, log=lambda *_: None).tflite


@pytest.fixture(scope="session")
def tiny_ferplus_keras_model(fer_root, tmp_path_factory) -> Path:
    """model.keras of the tiny net trained like ``tiny_keras_model`` but on FER+'s votes (eight labels,
    contempt included; FER-2013's label blended in at config.yaml's data.label_blend)."""
    from fer_edge.train.fit import run
    tmp = tmp_path_factory.mktemp("tiny_ferplus_run")
    return run(tiny_config(fer_root, tmp, **{"data.labels": "ferplus"}), fresh=True) / "model.keras"


@pytest.fixture(scope="session")
def tiny_ferplus_tflite(fer_root, tiny_ferplus_keras_model, tmp_path_factory) -> Path:
    """``tiny_ferplus_keras_model`` converted to int8 with a fitted temperature and a logit adjustment
    folded into its last layer, and the mirror inside: an eight-label model for the edge."""
    from fer_edge.convert.conversion import convert
    tmp = tmp_path_factory.mktemp("tiny_ferplus_tflite")
    cfg = tiny_config(fer_root, tmp, **{"convert.model": str(tiny_ferplus_keras_model), "convert.mirror": True,
                                        "convert.temperature": "auto", "convert.logit_adjust": 0.5})
    return convert(cfg, log=lambda *_: None).tflite


@pytest.fixture(scope="session")
def mirrored_tflite(fer_root, tiny_keras_model, tmp_path_factory) -> Path:
    """``tiny_keras_model`` converted with convert.mirror=true: each face averaged with its mirror inside
    the model, one invoke."""
    from fer_edge.convert.conversion import convert
    tmp = tmp_path_factory.mktemp("mirror")
    cfg = tiny_config(fer_root, tmp, **{"convert.model": str(tiny_keras_model), "convert.mirror": True})
    return convert(cfg, log=lambda *_: None).tflite
