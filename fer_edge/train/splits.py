"""The data set's values: a split of faces with their labels, the three splits, and the error a
broken data set raises."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_edge.common.labels import LABELS


class DataError(ValueError):
    """The dataset's structure is wrong; the message says where and what to do."""


@dataclass
class Split:
    x: np.ndarray            # (N, 48, 48) uint8
    y: np.ndarray            # (N,) int64 indices into labels: the label scored (FER+: the annotators' majority)
    names: np.ndarray        # (N,) str, file name or csv row id
    labels: tuple[str, ...] = LABELS
    t: np.ndarray | None = None      # (N, len(labels)) float32 training targets (FER+: the vote distribution)
    y13: np.ndarray | None = None    # (N,) FER-2013's own single label, where labels are FER+'s

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def counts(self) -> list[int]:
        return np.bincount(self.y, minlength=len(self.labels)).tolist()

    def take(self, idx: np.ndarray) -> "Split":
        return Split(self.x[idx], self.y[idx], self.names[idx], self.labels,
                     None if self.t is None else self.t[idx], None if self.y13 is None else self.y13[idx])


@dataclass
class FerData:
    train: Split
    val: Split
    test: Split
    form: str
    source: str
    skipped: dict = field(default_factory=dict)
    labels: tuple[str, ...] = LABELS
    test13: Split | None = None      # FER+ labels: the whole test split under FER-2013's single labels
