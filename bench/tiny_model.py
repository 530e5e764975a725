"""The tiny model the tests and the model benchmark train and convert when they need one of their own:
real FER-2013 faces from ../shared, a few short epochs, and a looser conversion gate (shared here so
that bench/ never imports tests/)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_edge.common.config import Config

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FER_ROOT = SHARED / "data" / "fer2013"
MEDIA = SHARED / "media"
CACHE_DIR = ROOT / ".cache" / "fer2013"      # decoded arrays, shared by every test and `make train`

# The tiny model: 7 x 150 real training faces (the val hold-out takes 10%), 8 short epochs without
# label smoothing, so it gives face-dependent predictions (3 epochs on 400 faces gave a constant
# model, which would make the parity tests meaningless) while training takes ~20-30 s here.
TINY_TRAIN = {
    "train.arch": "tiny", "train.bn_momentum": 0.9, "train.epochs": 8, "train.batch_size": 32,
    "train.warmup_epochs": 0, "train.learning_rate": 0.01, "train.precision": "float32",
    "train.verbose": 0, "train.augment.erasing_prob": 0.0, "train.class_weight": "none",
    "train.label_smoothing": 0.0, "train.dropout": 0.0, "data.max_per_class": 150,
    "train.augment.mixup_alpha": 0.0, "train.average_last": 0,   # a plain model for the conversion tests
    "data.labels": "fer2013",        # FER-2013's seven labels; tests' tiny_ferplus_tflite is the FER+ (eight-label) one
}
# Its conversion: a small calibration set, all 956 capped test faces for verification, and a looser
# gate than config.yaml's. Why: the tiny net is barely better than chance and its softmax is nearly
# flat (median top-1 probability ~0.2, top-1/top-2 margin ~0.02 = 5 steps of the int8 output's 1/256
# resolution), so ~3.5% of faces tie or swap at int8 resolution (measured agreement 0.965-0.972)
# and the accuracy difference wobbles by about a point. A deliberately broken model still scores
# ~0.03 agreement, far below this gate; the committed model is held to config.yaml's 0.97 / 1.0.
TINY_CONVERT = {"convert.calibration_size": 140, "convert.eval_max_images": 0, "convert.mirror": False,
                "convert.min_agreement": 0.9, "convert.max_top1_drop": 3.0,
                "convert.temperature": 1.0, "convert.logit_adjust": 0.0}


def tiny_config(fer_root: Path, tmp: Path, **extra) -> Config:
    """The validated config used for the tiny model's training and conversion (runs and models in tmp)."""
    from fer_edge.common.config import load_config
    overrides = {**TINY_TRAIN, **TINY_CONVERT, "data.root": str(fer_root), "data.cache_dir": str(CACHE_DIR),
                 "train.runs_dir": str(tmp / "runs"), "convert.output_dir": str(tmp / "models"), **extra}
    return load_config(ROOT / "config.yaml", list(overrides.items()))
