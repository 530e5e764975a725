"""Train an emotion CNN on FER-2013: ``python -m fer_edge.train`` (``make train``).

Reads top to bottom: config -> data -> model -> fit (with resume) -> float32 export -> report.
A run lives in ``runs/<timestamp>-<arch>/``. After every epoch the last checkpoint (model and
optimizer), the callbacks' state and history are written atomically, so an interrupted run
(Ctrl-C, power cut) continues from the last finished epoch the next time ``make train`` runs;
``--fresh`` (``make train FRESH=1``) starts a new run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from fer_edge import __version__  # noqa: E402
from fer_edge.common.config import (ConfigError, display_path, exit_on_config_error, load_config,  # noqa: E402
                           parse_override, resolve_path, with_defaults)  # noqa: E402
from fer_edge.common.labels import NUM_CLASSES  # noqa: E402
from fer_edge.train.average import epoch_file, prune, try_average  # noqa: E402
from fer_edge.train.data import DataError, FerData, load_configured  # noqa: E402

STATE_FILE = "state.json"
EPOCH_TIMES_KEPT = 50          # state.json keeps the last epochs' durations, for the time left
BEST_FILE = "model.keras"
LAST_FILE = "last.keras"


# ---------------------------------------------------------------- run directory
def find_resumable(runs_dir: Path, arch: str, finished: bool = False) -> Path | None:
    """The newest run of ``arch`` whose state says it has not finished (``finished``: that has)."""
    if not runs_dir.is_dir():
        return None
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and p.name.endswith(f"-{arch}")), reverse=True):
        state = d / STATE_FILE
        if state.is_file() and (d / LAST_FILE).is_file():
            try:
                if (json.loads(state.read_text()).get("status") == "finished") == finished:
                    return d
            except json.JSONDecodeError:
                continue
    return None


def new_run_dir(runs_dir: Path, arch: str) -> Path:
    d = runs_dir / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{arch}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def trim_history(path: Path, epochs_done: int) -> None:
    """Drop history rows of epochs after the last saved checkpoint (a kill between the CSV row and
    the checkpoint would otherwise leave a duplicate row when the epoch is trained again)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) < epochs_done]
    if keep != lines:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)


# ---------------------------------------------------------------- precision
def pick_precision(setting: str) -> str:
    """'auto' -> mixed_bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX, ~2x faster here),
    mixed_float16 on a CUDA GPU, else float32."""
    if setting != "auto":
        return setting
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "mixed_bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


# ---------------------------------------------------------------- tf.data
def class_weights(y: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights, normalised so the average sample weight is 1."""
    counts = np.bincount(y, minlength=NUM_CLASSES).astype(np.float64)
    if mode == "none":
        w = np.ones(NUM_CLASSES)
    else:
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
        if mode == "sqrt":
            w = np.sqrt(w)
    w = w / (w[y].mean() if y.size else 1.0)
    return w.astype(np.float32)


def make_datasets(data: FerData, tcfg: dict, seed: int):
    import tensorflow as tf
    from fer_edge.train.augment import make_augment, make_mix

    weights = tf.constant(class_weights(data.train.y, tcfg["class_weight"]))
    bs = tcfg["batch_size"]
    augment = make_augment(tcfg["augment"], seed)
    mix = make_mix(tcfg["augment"], seed)

    def to_xy(x, y):
        x = tf.cast(x, tf.float32)[..., None]
        return x, tf.one_hot(y, NUM_CLASSES)

    train = (tf.data.Dataset.from_tensor_slices((data.train.x, data.train.y))
             .shuffle(len(data.train), seed=seed, reshuffle_each_iteration=True)
             .batch(bs, drop_remainder=len(data.train) >= bs)
             .map(to_xy, num_parallel_calls=tf.data.AUTOTUNE)
             .map(lambda x, y: (augment(x), y, tf.gather(weights, tf.argmax(y, axis=1))),
                  num_parallel_calls=tf.data.AUTOTUNE))
    if mix is not None:
        train = train.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    if len(data.val) == 0:              # a final fit (data.val_fraction 0)
        return train, None
    val = (tf.data.Dataset.from_tensor_slices((data.val.x, data.val.y)).batch(256)
           .map(to_xy).prefetch(tf.data.AUTOTUNE))
    return train, val


# ---------------------------------------------------------------- callbacks
def make_callbacks(run_dir: Path, tcfg: dict, state: dict, resuming: bool, has_val: bool = True):
    """Checkpointing, early stopping, the plateau schedule and the kept epochs. Without a validation
    split (a final fit, data.val_fraction 0) the run goes the whole schedule and model.keras is the last
    epoch: nothing is monitored."""
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            s = state.get("early_stopping")
            if resuming and s:
                self.wait, self.best, self.best_epoch = s["wait"], s["best"], s["best_epoch"]

        def snapshot(self):
            return {"wait": int(self.wait), "best": float(self.best if self.best is not None else -np.inf),
                    "best_epoch": int(self.best_epoch)}

    class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            s = state.get("plateau")
            if resuming and s:
                self.wait, self.best, self.cooldown_counter = s["wait"], s["best"], s["cooldown_counter"]

        def snapshot(self):
            return {"wait": int(self.wait), "best": float(self.best), "cooldown_counter": int(self.cooldown_counter)}

    class LastCheckpoint(keras.callbacks.Callback):
        """After each epoch: last.keras (model + optimizer) and state.json, both atomically."""

        def __init__(self, trackers):
            super().__init__()
            self.trackers = trackers
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            tmp = run_dir / "last.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, run_dir / LAST_FILE)
            logs = logs or {}
            state["epoch"] = epoch + 1
            if not has_val:
                state["best_epoch"] = epoch + 1         # model.keras holds the last epoch
            elif float(logs.get("val_accuracy", -1)) > state.get("best_val_accuracy", -1):
                state["best_val_accuracy"], state["best_epoch"] = float(logs["val_accuracy"]), epoch + 1
            took = time.time() - self.t0
            state["train_seconds"] = state.get("train_seconds", 0.0) + took
            state["epoch_seconds"] = [*state.get("epoch_seconds", []), round(took, 1)][-EPOCH_TIMES_KEPT:]
            state["eta_seconds"] = round(time_left(state, tcfg["epochs"]), 1)
            self.t0 = time.time()
            for key, cb in self.trackers.items():
                state[key] = cb.snapshot()
            write_json_atomic(run_dir / STATE_FILE, state)

    class KeepEpochWeights(keras.callbacks.Callback):
        """The weights of the last ``train.average_last`` epochs, for weight averaging at the end.

        They are written through an uncompiled view of the same layers: ``save_weights`` of the training
        model would also store the optimizer's moments (3x the size, unused by the average)."""

        def on_epoch_end(self, epoch, logs=None):
            path = epoch_file(run_dir, epoch + 1)
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"tmp-{path.name}")
            if getattr(self, "_view", None) is None:
                self._view = keras.Model(self.model.inputs, self.model.outputs)
            self._view.save_weights(tmp)
            os.replace(tmp, path)
            prune(run_dir, tcfg["average_last"], epoch + 1)

    class LearningRateInLogs(keras.callbacks.Callback):
        """The epoch's learning rate into the logs (which every later callback shares): TensorBoard
        and history.csv get it."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(lr(self.model.optimizer.iterations) if callable(lr) else lr)

    class EpochReport(keras.callbacks.Callback):
        """Once state.json and history.csv hold the epoch, whatever train.verbose says: one line with
        where the run stands and the time left for the whole run, and history.png redrawn."""

        def on_epoch_end(self, epoch, logs=None):
            redraw_history(run_dir, state)
            print(epoch_line(state, tcfg["epochs"], logs or {}), flush=True)

    trackers, cbs = {}, [LearningRateInLogs()]
    if has_val:
        es = ResumableEarlyStopping(monitor="val_accuracy", mode="max", patience=tcfg["early_stopping_patience"],
                                    verbose=1)
        trackers["early_stopping"] = es
        cbs.append(es)
    if tcfg["lr_schedule"] == "plateau":        # config validation refuses it without a validation split
        rl = ResumableReduceLROnPlateau(monitor="val_loss", factor=tcfg["plateau_factor"],
                                        patience=tcfg["plateau_patience"], min_lr=tcfg["min_lr"], verbose=1)
        trackers["plateau"] = rl
        cbs.append(rl)
    if has_val:
        best = keras.callbacks.ModelCheckpoint(str(run_dir / BEST_FILE), monitor="val_accuracy", mode="max",
                                               save_best_only=True, verbose=0,
                                               initial_value_threshold=state.get("best_val_accuracy") if resuming else None)
    else:
        best = keras.callbacks.ModelCheckpoint(str(run_dir / BEST_FILE), verbose=0)     # every epoch: the last
    cbs += [
        best,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        *([KeepEpochWeights()] if tcfg["average_last"] else []),
        *([keras.callbacks.TensorBoard(str(run_dir / "tb"), write_graph=False, update_freq="epoch", profile_batch=0)]
          if tcfg["tensorboard"] and tensorboard_installed() else []),
        LastCheckpoint(trackers),           # state.json says an epoch is done once all else is saved
        EpochReport(),
    ]
    return cbs


def tensorboard_installed() -> bool:
    """TensorFlow writes summaries only with the tensorboard package; without it, say so and go on."""
    import importlib.util
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    print("note: train.tensorboard is on but the tensorboard package is not installed "
          "(`pip install -r requirements-train.txt`); training without TensorBoard logs")
    return False


def time_left(state: dict, epochs: int) -> float:
    """Seconds the rest of the run should take: the median epoch time x the epochs left."""
    times = state.get("epoch_seconds") or []
    return float(np.median(times)) * max(0, epochs - state["epoch"]) if times else float("nan")


def _duration(s: float) -> str:
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
            f"about {_duration(time_left(state, epochs))} left")


def redraw_history(run_dir: Path, state: dict) -> None:
    """history.png from history.csv, written to a temporary file and renamed over the old one."""
    from fer_edge.train.plots import plot_history
    tmp = run_dir / "history.tmp.png"
    plot_history(run_dir / "history.csv", tmp,
                 [c["after_epoch"] for c in state.get("schedule_changes", []) if c.get("extended")])
    if tmp.is_file():
        os.replace(tmp, run_dir / "history.png")


# ---------------------------------------------------------------- model
def learning_rate(tcfg: dict, steps_per_epoch: int):
    """The peak LR, or for ``cosine`` the warmup + cosine schedule over ``train.epochs`` (in steps)."""
    import keras
    lr = tcfg["learning_rate"]
    if tcfg["lr_schedule"] != "cosine":
        return lr
    warm = tcfg["warmup_epochs"] * steps_per_epoch
    total = max(tcfg["epochs"] * steps_per_epoch - warm, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warm else lr, decay_steps=total,
        alpha=tcfg["min_lr"] / tcfg["learning_rate"], warmup_target=lr if warm else None, warmup_steps=warm)


def compile_model(model, tcfg: dict, steps_per_epoch: int):
    import keras
    lr = learning_rate(tcfg, steps_per_epoch)
    if tcfg["optimizer"] == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=tcfg["weight_decay"])
    else:
        opt = keras.optimizers.Adam(learning_rate=lr)
    model.compile(optimizer=opt,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=tcfg["label_smoothing"]),
                  metrics=["accuracy"])
    return model


def to_float32(model):
    """Rebuild a (possibly mixed-precision) trained model as pure float32, same weights."""
    import keras
    from fer_edge.train.model import build_model
    if all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers):
        return model
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = build_model(model.name, dropout=0.0, bn_momentum=0.99)
    finally:
        keras.mixed_precision.set_global_policy(old)
    clean.set_weights(model.get_weights())
    return clean


# ---------------------------------------------------------------- resuming with --set
# keys that change how a resumed run goes on, not what it is: patience, progress output, extra exports,
# where the decoded arrays are cached; and the convert/edge sections, which training does not read
RESUME_SAFE = ("train.early_stopping_patience", "train.plateau_patience", "train.verbose",
               "train.export_seed_format", "train.average_last", "train.tensorboard", "data.cache_dir")


def _get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def resume_overrides(saved: dict, cfg: dict, set_keys: tuple[str, ...], run_dir: Path) -> list[dict]:
    """Apply ``--set`` values to a resumed run's saved config; return the changes made.

    A resumed run trains on with its own config.yaml. Keys in RESUME_SAFE (and the convert/edge
    sections) take the new value for the rest of the run; any other train/data key whose value differs
    from the run's is refused, naming the key, instead of being silently ignored. ``train.epochs`` is
    handled by the caller (EPOCHS=N changes the run's length).
    """
    changes = []
    for key in dict.fromkeys(set_keys):
        new, old = _get(cfg, key), _get(saved, key)
        if key == "train.epochs" or new == old:
            continue
        if key in RESUME_SAFE or key.split(".")[0] not in ("train", "data"):
            section, *mid, leaf = key.split(".")
            node = saved.setdefault(section, {})
            for part in mid:
                node = node.setdefault(part, {})
            node[leaf] = new
            changes.append({"key": key, "from": old, "to": new})
        else:
            raise DataError(f"--set {key}={new!r} cannot change the run being resumed, {run_dir}, which was "
                            f"started with {old!r}; drop the --set to resume it, or start a new run with it "
                            f"(`make train FRESH=1`). On a resumed run --set may change: {', '.join(RESUME_SAFE)}")
    return changes


# ---------------------------------------------------------------- main
def run(cfg: dict, fresh: bool = False, config_path: Path | None = None, finish: bool = False,
        new_epochs: int | None = None, extend: int | None = None, set_keys: tuple[str, ...] = ()) -> Path:
    """Train (or resume) and return the run directory.

    ``finish``: stop the unfinished run where it is (a manual early stop): evaluate its best checkpoint
    and write the outputs without training further. ``new_epochs``: when resuming, change the run's
    length (the cosine schedule is rebuilt for it and continues from the current step). ``extend``:
    continue the newest *finished* run to this many epochs in all: its last checkpoint trains on with
    the cosine schedule rebuilt for the new length (a warm restart: the LR rises to where the longer
    curve is at this epoch, then decays again); model.keras is replaced only by a better epoch.
    ``set_keys``: the keys given with ``--set``; see :func:`resume_overrides` for what they do to a resumed run.
    """
    tcfg, dcfg = cfg["train"], cfg["data"]
    runs_dir = resolve_path(tcfg["runs_dir"])
    if extend:
        run_dir = find_resumable(runs_dir, tcfg["arch"], finished=True)
        if run_dir is None or find_resumable(runs_dir, tcfg["arch"]) is not None:
            raise DataError(f"EXTEND needs a finished {tcfg['arch']} run under {runs_dir} and no unfinished one; "
                            "`make train` resumes an unfinished run (EPOCHS=N changes its length)")
        new_epochs = extend
    else:
        run_dir = None if fresh else find_resumable(runs_dir, tcfg["arch"])
    resuming = run_dir is not None
    if finish and not (resuming and (run_dir / BEST_FILE).is_file()):
        raise DataError(f"no unfinished {tcfg['arch']} run with a finished epoch under {runs_dir} to finish; "
                        "`make train` starts or resumes one")
    if resuming:
        saved = with_defaults(yaml.safe_load((run_dir / "config.yaml").read_text()))   # keys added since: defaults
        state = json.loads((run_dir / STATE_FILE).read_text())
        old_epochs = saved["train"]["epochs"]
        changes = resume_overrides(saved, cfg, set_keys, run_dir)   # before anything is written
        rewrite = bool(changes)
        if extend:
            if extend <= state["epoch"]:
                raise DataError(f"{run_dir} has already run {state['epoch']} epochs; EXTEND={extend} must be more")
            print(f"extending finished run {run_dir} from {state['epoch']} to {extend} epochs")
            state["status"] = "training"
            for key in ("test_accuracy", "early_stopping", "plateau"):   # patience counts from the restart
                state.pop(key, None)
        if new_epochs and new_epochs != old_epochs and not finish:
            if new_epochs <= state["epoch"]:
                raise DataError(f"{run_dir} has already run {state['epoch']} epochs; EPOCHS={new_epochs} would "
                                "end it before now. Use `make train FINISH=1` to stop it where it is.")
            saved["train"]["epochs"] = new_epochs
            rewrite = True
            state.setdefault("schedule_changes", []).append(
                {"after_epoch": state["epoch"], "epochs_from": old_epochs, "epochs_to": new_epochs,
                 **({"extended": True} if extend else {})})
            print(f"note: run length changed from {old_epochs} to {new_epochs} epochs")
        elif tcfg["epochs"] != old_epochs and not extend:
            print(f"note: resuming with train.epochs={old_epochs} from the run's own config "
                  "(EPOCHS=N changes it)")
        for c in changes:
            print(f"note: {c['key']} changed from {c['from']!r} to {c['to']!r} for the rest of the run")
        state.setdefault("config_changes", []).extend({"after_epoch": state["epoch"], **c} for c in changes)
        if rewrite:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
            write_json_atomic(run_dir / STATE_FILE, state)
        cfg = saved
        tcfg, dcfg = cfg["train"], cfg["data"]
        trim_history(run_dir / "history.csv", state["epoch"])
        prune(run_dir, tcfg["average_last"], state["epoch"])
        print(f"resuming {run_dir} after epoch {state['epoch']}/{tcfg['epochs']} (make train FRESH=1 starts over)")
        if state.get("epoch_seconds"):
            best = (f"best val_accuracy {state['best_val_accuracy']:.4f} at epoch {state.get('best_epoch')}, "
                    if state.get("best_val_accuracy") is not None else "")
            print(f"where it stands: {best}{float(np.median(state['epoch_seconds'])):.0f} s/epoch, "
                  f"about {_duration(time_left(state, tcfg['epochs']))} left for the remaining "
                  f"{tcfg['epochs'] - state['epoch']} epochs")
    # the data first: a missing or broken dataset must not leave an empty run directory behind
    data = load_configured(dcfg)
    if not resuming:
        run_dir = new_run_dir(runs_dir, tcfg["arch"])
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        state = {"status": "training", "epoch": 0, "arch": tcfg["arch"], "started": datetime.now().isoformat()}
        print(f"new run: {run_dir}")

    import keras
    import tensorflow as tf
    # a resumed run must not replay the shuffle order, augmentation and dropout of its first epochs:
    # seeding with (seed + epochs done) gives each sitting its own stream (a fresh run: seed itself)
    stream_seed = tcfg["seed"] + state["epoch"]
    keras.utils.set_random_seed(stream_seed)
    precision = pick_precision(tcfg["precision"])
    keras.mixed_precision.set_global_policy(precision)
    state["precision"] = precision
    state["data"] = {"form": data.form, "source": data.source, "train": data.train.counts(),
                     "val": data.val.counts(), "test": data.test.counts()}
    from fer_edge.train.plots import plot_class_distribution
    plot_class_distribution(data, run_dir / "class_distribution.png")

    if finish:
        print(f"finishing {run_dir} after epoch {state['epoch']}/{tcfg['epochs']} with its best checkpoint")
        finalize(run_dir, cfg, data, state)
        return run_dir
    train_ds, val_ds = make_datasets(data, tcfg, stream_seed)
    steps = int(tf.data.experimental.cardinality(train_ds).numpy())
    if resuming:
        print(f"shuffling, augmentation and dropout seeded with {stream_seed} (train.seed + {state['epoch']} epochs done)")
        model = keras.models.load_model(run_dir / LAST_FILE)
        if state.get("schedule_changes"):      # the saved optimizer holds the schedule it was built with
            model.optimizer.learning_rate = learning_rate(tcfg, steps)
    else:
        from fer_edge.train.model import build_model
        model = compile_model(build_model(tcfg["arch"], tcfg["dropout"], tcfg["bn_momentum"]), tcfg, steps)
        model.summary(print_fn=lambda s, **_: None)
        state["params"] = int(model.count_params())
        write_json_atomic(run_dir / STATE_FILE, state)
    print(f"model {tcfg['arch']}: {model.count_params():,} params, precision {precision}, {steps} steps/epoch")

    if val_ds is None and not resuming:
        print(f"final fit: no validation split (data.val_fraction 0); all {len(data.train)} training faces train "
              f"for the whole schedule of {tcfg['epochs']} epochs"
              + (f", and the average of the last {tcfg['average_last']} becomes the model" if tcfg["average_last"] >= 2
                 else ", and the last epoch becomes the model"))
    if state["epoch"] < tcfg["epochs"]:
        callbacks = make_callbacks(run_dir, tcfg, state, resuming, has_val=val_ds is not None)
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=tcfg["epochs"], initial_epoch=state["epoch"],
                      callbacks=callbacks, verbose=tcfg["verbose"])
        except KeyboardInterrupt:
            print(f"\ninterrupted after epoch {state['epoch']}; `make train` resumes from {run_dir / LAST_FILE}")
            raise SystemExit(130)
    finalize(run_dir, cfg, data, state)
    return run_dir


def finalize(run_dir: Path, cfg: dict, data: FerData, state: dict) -> None:
    """Best checkpoint -> float32 model.keras, plots, evaluation on the test split."""
    import keras
    from fer_edge.train.evaluate import evaluate_model, write_report
    best = keras.models.load_model(run_dir / BEST_FILE, compile=False)
    best = to_float32(best)
    earlier = state.get("weight_average")
    best, averaged = try_average(run_dir, best, data, cfg["train"]["average_last"], state["epoch"])
    if averaged:
        if earlier and (earlier["used"] or "earlier" in earlier) and not averaged["used"]:
            averaged["earlier"] = earlier.get("earlier", earlier)   # model.keras may still be that average (EXTEND)
        state["weight_average"] = averaged
    tmp = run_dir / "model.tmp.keras"
    best.save(tmp)
    os.replace(tmp, run_dir / BEST_FILE)
    if (run_dir / "history.csv").is_file():
        redraw_history(run_dir, state)
    report = evaluate_model(best, data.test, split_name=f"test ({data.form}: {display_path(data.source)})")
    report["run"] = {"dir": display_path(run_dir), "arch": cfg["train"]["arch"], "epochs_run": state["epoch"],
                     "epochs_planned": cfg["train"]["epochs"], "train_faces": len(data.train),
                     "val_faces": len(data.val),
                     "best_epoch": state.get("best_epoch"), "best_val_accuracy": state.get("best_val_accuracy"),
                     "train_seconds": round(state.get("train_seconds", 0.0), 1), "precision": state.get("precision"),
                     "params": int(best.count_params())}
    for key in ("schedule_changes", "config_changes", "weight_average"):
        if state.get(key):
            report["run"][key] = state[key]
    write_report(report, data.test, run_dir)
    if cfg["train"]["export_seed_format"]:
        (run_dir / "model.json").write_text(best.to_json())
        best.save_weights(run_dir / "model.weights.h5")
    state["status"] = "finished"
    state["test_accuracy"] = report["accuracy"]
    write_json_atomic(run_dir / STATE_FILE, state)
    print(f"test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}; report in {run_dir}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_edge.train", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"fer-edge {__version__}")
    ap.add_argument("--config", type=Path, default=None, help="config file (default: config.yaml)")
    ap.add_argument("--data", help="dataset root or fer2013.csv (overrides data.root)")
    ap.add_argument("--arch", help="architecture name (overrides train.arch)")
    ap.add_argument("--epochs", type=int,
                    help="overrides train.epochs; when resuming, changes the unfinished run's length")
    ap.add_argument("--fresh", action="store_true", help="start a new run instead of resuming")
    ap.add_argument("--finish", action="store_true",
                    help="stop the unfinished run where it is: evaluate its best checkpoint, write the outputs")
    ap.add_argument("--extend", type=int, metavar="N",
                    help="continue the newest finished run to N epochs in all (warm restart of the cosine schedule)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. train.batch_size=64")
    args = ap.parse_args(argv)
    overrides = list(args.set)
    if args.data:
        overrides.append(("data.root", str(Path(args.data).resolve())))
    if args.arch:
        overrides.append(("train.arch", args.arch))
    if args.epochs is not None:
        overrides.append(("train.epochs", args.epochs))
    try:
        cfg = load_config(args.config, overrides)
        set_keys = tuple(parse_override(item)[0] for item in args.set)
    except ConfigError as exc:
        exit_on_config_error(exc)
    if "train.epochs" in set_keys and args.epochs is None:      # --set train.epochs=N is --epochs N
        args.epochs = cfg["train"]["epochs"]
    try:
        if sum(map(bool, (args.fresh, args.finish, args.extend))) > 1:
            ap.error("--fresh, --finish and --extend exclude each other")
        run(cfg, fresh=args.fresh, finish=args.finish, new_epochs=args.epochs, extend=args.extend, set_keys=set_keys)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
