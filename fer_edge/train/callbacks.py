"""The callbacks of a training run: resumable early stopping and plateau schedule, the per-epoch
checkpoint and state, the kept epoch weights, the learning rate in the logs, the epoch line.

Everything that reaches into Keras' private callback state (``wait``, ``best``, ...) is in
``Resumable``: tests/test_train.py fails loudly if a Keras upgrade renames those attributes.
"""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import keras
import numpy as np

from fer_edge.common.config import TrainConfig
from fer_edge.train.average import epoch_file, prune
from fer_edge.train.progress import epoch_line, redraw_history, time_left
from fer_edge.train.rundir import BEST_FILE, LAST_FILE, STATE_FILE, write_json_atomic

EPOCH_TIMES_KEPT = 50          # state.json keeps the last epochs' durations, for the time left


class Resumable:
    """A Keras callback whose counters survive an interruption: ``snapshot()`` after every epoch goes
    into state.json under ``key``, and a resumed run puts them back at the start of training.
    ``RESTORED`` names the (private) attributes of the Keras class that hold them."""
    RESTORED: tuple[str, ...] = ()

    def __init__(self, *args, key: str, saved: dict | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.key, self._saved = key, saved

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for name in self.RESTORED:
            if not hasattr(self, name):
                raise RuntimeError(f"Keras {keras.__version__}: {type(self).__mro__[2].__name__} has no '{name}' "
                                   "any more; update Resumable.RESTORED in fer_edge/train/callbacks.py")
        if self._saved:
            for name in self.RESTORED:
                setattr(self, name, self._saved[name])

    def snapshot(self) -> dict:
        out = {}
        for name in self.RESTORED:
            v = getattr(self, name)
            out[name] = int(v) if isinstance(v, (int, np.integer)) else float(v if v is not None else -np.inf)
        return out


class ResumableEarlyStopping(Resumable, keras.callbacks.EarlyStopping):
    RESTORED = ("wait", "best", "best_epoch")


class ResumableReduceLROnPlateau(Resumable, keras.callbacks.ReduceLROnPlateau):
    RESTORED = ("wait", "best", "cooldown_counter")


class LastCheckpoint(keras.callbacks.Callback):
    """After each epoch: last.keras (model + optimizer) and state.json, both atomically."""

    def __init__(self, run_dir: Path, state: dict, epochs: int, has_val: bool, trackers: list[Resumable]):
        super().__init__()
        self.run_dir, self.state, self.epochs, self.has_val, self.trackers = run_dir, state, epochs, has_val, trackers
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        tmp = self.run_dir / "last.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.run_dir / LAST_FILE)
        logs, state = logs or {}, self.state
        state["epoch"] = epoch + 1
        if not self.has_val:
            state["best_epoch"] = epoch + 1         # model.keras holds the last epoch
        elif float(logs.get("val_accuracy", -1)) > state.get("best_val_accuracy", -1):
            state["best_val_accuracy"], state["best_epoch"] = float(logs["val_accuracy"]), epoch + 1
        took = time.time() - self.t0
        state["train_seconds"] = state.get("train_seconds", 0.0) + took
        state["epoch_seconds"] = [*state.get("epoch_seconds", []), round(took, 1)][-EPOCH_TIMES_KEPT:]
        state["eta_seconds"] = round(time_left(state, self.epochs), 1)
        self.t0 = time.time()
        for cb in self.trackers:
            state[cb.key] = cb.snapshot()
        write_json_atomic(self.run_dir / STATE_FILE, state)


class KeepEpochWeights(keras.callbacks.Callback):
    """The weights of the last ``train.average_last`` epochs, for weight averaging at the end.

    They are written through an uncompiled view of the same layers: ``save_weights`` of the training
    model would also store the optimizer's moments (3x the size, unused by the average)."""

    def __init__(self, run_dir: Path, keep: int):
        super().__init__()
        self.run_dir, self.keep, self._view = run_dir, keep, None

    def on_epoch_end(self, epoch, logs=None):
        path = epoch_file(self.run_dir, epoch + 1)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f"tmp-{path.name}")
        if self._view is None:
            self._view = keras.Model(self.model.inputs, self.model.outputs)
        self._view.save_weights(tmp)
        os.replace(tmp, path)
        prune(self.run_dir, self.keep, epoch + 1)


class LearningRateInLogs(keras.callbacks.Callback):
    """The epoch's learning rate into the logs (which every later callback shares): TensorBoard and
    history.csv get it."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(lr(self.model.optimizer.iterations) if callable(lr) else lr)


class EpochReport(keras.callbacks.Callback):
    """Once state.json and history.csv hold the epoch, whatever train.verbose says: one line with where
    the run stands and the time left for the whole run, and history.png redrawn."""

    def __init__(self, run_dir: Path, state: dict, epochs: int):
        super().__init__()
        self.run_dir, self.state, self.epochs = run_dir, state, epochs

    def on_epoch_end(self, epoch, logs=None):
        redraw_history(self.run_dir, self.state)
        print(epoch_line(self.state, self.epochs, logs or {}), flush=True)


def tensorboard_installed() -> bool:
    """TensorFlow writes summaries only with the tensorboard package; without it, say so and go on."""
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    print("note: train.tensorboard is on but the tensorboard package is not installed "
          "(`pip install -r requirements-train.txt`); training without TensorBoard logs")
    return False


def make_callbacks(run_dir: Path, tcfg: TrainConfig, state: dict, resuming: bool, has_val: bool = True) -> list:
    """Checkpointing, early stopping, the plateau schedule and the kept epochs. Without a validation
    split (a final fit, data.val_fraction 0) the run goes the whole schedule and model.keras is the last
    epoch: nothing is monitored."""
    def saved(key: str):
        return state.get(key) if resuming else None

    trackers: list[Resumable] = []
    if has_val:
        trackers.append(ResumableEarlyStopping(monitor="val_accuracy", mode="max", verbose=1,
                                               patience=tcfg.early_stopping_patience,
                                               key="early_stopping", saved=saved("early_stopping")))
    if tcfg.lr_schedule == "plateau":        # config validation refuses it without a validation split
        trackers.append(ResumableReduceLROnPlateau(monitor="val_loss", factor=tcfg.plateau_factor,
                                                   patience=tcfg.plateau_patience, min_lr=tcfg.min_lr,
                                                   verbose=1, key="plateau", saved=saved("plateau")))
    if has_val:
        best = keras.callbacks.ModelCheckpoint(str(run_dir / BEST_FILE), monitor="val_accuracy", mode="max",
                                               save_best_only=True, verbose=0,
                                               initial_value_threshold=state.get("best_val_accuracy") if resuming else None)
    else:
        best = keras.callbacks.ModelCheckpoint(str(run_dir / BEST_FILE), verbose=0)     # every epoch: the last
    return [
        LearningRateInLogs(),
        *trackers,
        best,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        *([KeepEpochWeights(run_dir, tcfg.average_last)] if tcfg.average_last else []),
        *([keras.callbacks.TensorBoard(str(run_dir / "tb"), write_graph=False, update_freq="epoch", profile_batch=0)]
          if tcfg.tensorboard and tensorboard_installed() else []),
        LastCheckpoint(run_dir, state, tcfg.epochs, has_val, trackers),   # the epoch is done once all else is saved
        EpochReport(run_dir, state, tcfg.epochs),
    ]
