"""Where a run stands, for the person waiting on it: the per-epoch line, the time left, history.png."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def time_left(state: dict, epochs: int) -> float:
    """Seconds the rest of the run should take: the median epoch time x the epochs left."""
    times = state.get("epoch_seconds") or []
    return float(np.median(times)) * max(0, epochs - state["epoch"]) if times else float("nan")


def duration(s: float) -> str:
    if not np.isfinite(s):
        return "unknown"
    m = int(round(s / 60))
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min" if m else f"{int(round(s))} s"


def epoch_line(state: dict, epochs: int, logs: dict) -> str:
    """'epoch 12/130: val_accuracy 0.6012 (best 0.6101, epoch 10), 63 s/epoch, about 2 h 14 min left'."""
    done = state["epoch"]
    times = state.get("epoch_seconds") or [float("nan")]
    if "val_accuracy" in logs:
        where = (f"val_accuracy {float(logs['val_accuracy']):.4f} (best {state.get('best_val_accuracy', float('nan')):.4f}, "
                 f"epoch {state.get('best_epoch')})")
    else:
        where = f"accuracy {float(logs.get('accuracy', float('nan'))):.4f} (no validation split)"
    return (f"epoch {done}/{epochs}: {where}, {float(np.median(times)):.0f} s/epoch, "
            f"about {duration(time_left(state, epochs))} left")


def resume_line(state: dict, epochs: int) -> str | None:
    """'where it stands: ...' when a run is resumed (None before its first epoch's timing)."""
    if not state.get("epoch_seconds"):
        return None
    best = (f"best val_accuracy {state['best_val_accuracy']:.4f} at epoch {state.get('best_epoch')}, "
            if state.get("best_val_accuracy") is not None else "")
    return (f"where it stands: {best}{float(np.median(state['epoch_seconds'])):.0f} s/epoch, "
            f"about {duration(time_left(state, epochs))} left for the remaining {epochs - state['epoch']} epochs")


def redraw_history(run_dir: Path, state: dict) -> None:
    """history.png from history.csv, written to a temporary file and renamed over the old one."""
    from fer_edge.train.plots import plot_history
    tmp = run_dir / "history.tmp.png"
    plot_history(run_dir / "history.csv", tmp,
                 [c["after_epoch"] for c in state.get("schedule_changes", []) if c.get("extended")])
    if tmp.is_file():
        os.replace(tmp, run_dir / "history.png")
