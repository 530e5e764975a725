"""Training plots (matplotlib, Agg backend: works on headless workstations)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_edge.common.labels import LABELS  # noqa: E402


def plot_class_distribution(data, out: Path) -> Path:
    """Bar chart of images per class in train / val / test."""
    labels = data.labels
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (name, split) in enumerate((("train", data.train), ("val", data.val), ("test", data.test))):
        counts = split.counts()
        bars = ax.bar(x + (i - 1) * 0.27, counts, 0.27, label=f"{name} ({sum(counts)})")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, labels)
    ax.set_ylabel("images")
    ax.set_title("FER+ class distribution (majority of the votes)" if len(labels) > len(LABELS)
                 else "FER-2013 class distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_history(history_csv: Path, out: Path, restarts: Sequence[int] = ()) -> Path:
    """Loss and accuracy curves from Keras' CSVLogger file; ``restarts``: epochs after which the
    schedule was restarted (``make train EXTEND=N``), drawn as dashed lines."""
    with open(history_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return out
    ep = [int(r["epoch"]) + 1 for r in rows]
    col = lambda k: [float(r[k]) for r in rows]  # noqa: E731
    has_val = rows[0].get("val_loss", "NA") != "NA"     # Keras writes NA in a final fit (data.val_fraction 0)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(ep, col("loss"), label="train")
    if has_val:
        a1.plot(ep, col("val_loss"), label="val")
    a1.set_title("loss (label-smoothed cross-entropy)")
    a2.plot(ep, col("accuracy"), label="train (augmented)")
    if has_val:
        a2.plot(ep, col("val_accuracy"), label="val")
    a2.set_title("accuracy")
    for a in (a1, a2):
        for i, e in enumerate(restarts):
            a.axvline(e + 0.5, color="grey", ls="--", lw=1, label="LR restart (EXTEND)" if i == 0 else None)
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_confusion(cm: np.ndarray, labels, out: Path, title: str) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal)."""
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_face_grid(images: np.ndarray, titles: list[str], out: Path, title: str, cols: int = 8) -> Path:
    """A grid of 48x48 faces with a caption each."""
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.75))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img, t in zip(np.atleast_1d(axes).ravel(), images, titles):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(t, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
