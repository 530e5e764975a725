"""The representative set for int8 calibration: real FER training faces, balanced over classes.

The faces come from ``train.data.load_split(..., "train")``, which already passed every image
through ``common.preprocess.preprocess_face`` (what the edge does to a detected face), and are fed
as raw float32 pixels 0..255 because the model rescales internally.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_edge.common.config import DataConfig
from fer_edge.convert.errors import ConvertInputError


@dataclass(frozen=True)
class CalibrationSet:
    x: np.ndarray            # (N, 48, 48) uint8
    per_class: dict          # label -> count
    source: str

    @property
    def sha256(self) -> str:
        """Names exactly which faces calibrated a model: two conversions with equal hashes saw the same."""
        return hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest()


def balanced_indices(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Up to ``size`` indices with the classes as equal as their sizes allow.

    Equal shares (not proportional ones) so the rare 'disgust' faces still shape the ranges;
    what a small class cannot fill goes to the others.
    """
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in range(int(y.max()) + 1 if y.size else 0)]
    take = [0] * len(pools)
    left = min(size, sum(p.size for p in pools))
    while left > 0:
        open_ = [c for c, p in enumerate(pools) if take[c] < p.size]
        share = max(left // len(open_), 1)
        for c in open_:
            n = min(share, pools[c].size - take[c], left)
            take[c] += n
            left -= n
            if left == 0:
                break
    return np.sort(np.concatenate([p[:n] for p, n in zip(pools, take)])).astype(np.int64)


def load_calibration(data_cfg: DataConfig, root: Path, size: int) -> CalibrationSet:
    """``size`` balanced faces of the training split at ``root``; ConvertInputError if none."""
    from fer_edge.common.config import display_path
    from fer_edge.train.data import DataError, load_split
    try:
        split = load_split(data_cfg, "train", root)
    except (DataError, OSError) as exc:
        raise ConvertInputError(f"calibration data: {exc}. int8 conversion needs real FER-2013 training "
                                "faces: pass DATA=path/to/fer2013 (or set data.root in config.yaml).") from exc
    if len(split) == 0:
        raise ConvertInputError(f"calibration data: no training images found under {root}. Pass DATA= a "
                                "FER-2013 copy with train/<class>/ images.")
    idx = balanced_indices(split.y, size, data_cfg.seed)
    counts = np.bincount(split.y[idx], minlength=len(split.labels))
    held_out = (f"the {data_cfg.val_fraction:g} validation hold-out excluded" if data_cfg.val_fraction > 0
                else "all of it: data.val_fraction is 0")
    return CalibrationSet(split.x[idx], {name: int(n) for name, n in zip(split.labels, counts)},
                          f"{display_path(root)} train split ({held_out}), data.seed {data_cfg.seed}")


def representative_dataset(x: np.ndarray):
    """A generator factory for TFLiteConverter: one (1,48,48,1) float32 face of raw 0..255 pixels."""
    def gen():
        for face in x:
            yield [face[None, :, :, None].astype(np.float32)]
    return gen
