"""Fit a model on FER-2013: a new run, a resumed one, an extended one, or one finished where it stands.

``run()`` picks the run directory for the mode, loads the data, builds or loads the model, fits with
the callbacks of train.callbacks and ends with train.finalize.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from fer_edge.common.config import Config, TrainConfig, resolve_path  # noqa: E402
from fer_edge.train.data import FerData, load_configured  # noqa: E402
from fer_edge.train.errors import TrainError  # noqa: E402
from fer_edge.train.resume import reopen  # noqa: E402
from fer_edge.train.rundir import (BEST_FILE, CONFIG_FILE, LAST_FILE, STATE_FILE, find_resumable,  # noqa: E402
                                   new_run_dir, write_json_atomic)


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
def class_weights(y: np.ndarray, mode: str, classes: int) -> np.ndarray:
    """Per-class loss weights, normalised so the average sample weight is 1."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    if mode == "none":
        w = np.ones(classes)
    else:
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
        if mode == "sqrt":
            w = np.sqrt(w)
    w = w / (w[y].mean() if y.size else 1.0)
    return w.astype(np.float32)


def make_datasets(data: FerData, tcfg: TrainConfig, seed: int, soft: np.ndarray | None = None, hard_weight: float = 1.0):
    """The training and validation tf.data pipelines. With ``soft`` (the teachers' probabilities of each
    training face) the target is ``hard_weight`` x the one-hot label + the rest x the teachers'. The label
    is the split's target distribution where it has one (FER+'s votes), else its one-hot class."""
    import tensorflow as tf
    from fer_edge.train.augment import make_augment, make_mix

    classes = len(data.labels)
    weights = tf.constant(class_weights(data.train.y, tcfg.class_weight, classes))
    bs = tcfg.batch_size
    augment = make_augment(tcfg.augment, seed)
    mix = make_mix(tcfg.augment, seed)

    def to_xy(x, y):
        x = tf.cast(x, tf.float32)[..., None]
        return x, tf.one_hot(y, classes)

    targets = data.train.t if data.train.t is not None else np.eye(classes, dtype=np.float32)[data.train.y]
    hw = 1.0 if soft is None else float(hard_weight)
    if soft is None:
        soft = np.zeros_like(targets)
    train = (tf.data.Dataset.from_tensor_slices((data.train.x, data.train.y, targets, soft))
             .shuffle(len(data.train), seed=seed, reshuffle_each_iteration=True)
             .batch(bs, drop_remainder=len(data.train) >= bs)
             .map(lambda x, y, t, s: (tf.cast(x, tf.float32)[..., None], hw * t + (1.0 - hw) * s,
                                      tf.gather(weights, y)), num_parallel_calls=tf.data.AUTOTUNE))
    train = train.map(lambda x, y, w: (augment(x), y, w), num_parallel_calls=tf.data.AUTOTUNE)
    if mix is not None:
        train = train.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    if len(data.val) == 0:              # a final fit (data.val_fraction 0)
        return train, None
    val = (tf.data.Dataset.from_tensor_slices((data.val.x, data.val.y)).batch(256)
           .map(to_xy).prefetch(tf.data.AUTOTUNE))
    return train, val


# ---------------------------------------------------------------- model
def learning_rate(tcfg: TrainConfig, steps_per_epoch: int):
    """The peak LR, or for ``cosine`` the warmup + cosine schedule over ``train.epochs`` (in steps)."""
    import keras
    lr = tcfg.learning_rate
    if tcfg.lr_schedule != "cosine":
        return lr
    warm = tcfg.warmup_epochs * steps_per_epoch
    total = max(tcfg.epochs * steps_per_epoch - warm, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warm else lr, decay_steps=total,
        alpha=tcfg.min_lr / tcfg.learning_rate, warmup_target=lr if warm else None, warmup_steps=warm)


def compile_model(model, tcfg: TrainConfig, steps_per_epoch: int):
    import keras
    lr = learning_rate(tcfg, steps_per_epoch)
    if tcfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=tcfg.weight_decay)
    else:
        opt = keras.optimizers.Adam(learning_rate=lr)
    model.compile(optimizer=opt,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=tcfg.label_smoothing),
                  metrics=["accuracy"])
    return model


# ---------------------------------------------------------------- the modes
def pick_run(runs_dir: Path, arch: str, fresh: bool, finish: bool, extend: int | None) -> Path | None:
    """The run directory to go on with, or None for a new run."""
    if extend:
        run_dir = find_resumable(runs_dir, arch, finished=True)
        if run_dir is None or find_resumable(runs_dir, arch) is not None:
            raise TrainError(f"EXTEND needs a finished {arch} run under {runs_dir} and no unfinished one; "
                             "`make train` resumes an unfinished run (EPOCHS=N changes its length)")
        return run_dir
    run_dir = None if fresh else find_resumable(runs_dir, arch)
    if finish and not (run_dir is not None and (run_dir / BEST_FILE).is_file()):
        raise TrainError(f"no unfinished {arch} run with a finished epoch under {runs_dir} to finish; "
                         "`make train` starts or resumes one")
    return run_dir


def start_run(runs_dir: Path, cfg: Config) -> tuple[Path, dict]:
    run_dir = new_run_dir(runs_dir, cfg.train.arch)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    print(f"new run: {run_dir}")
    return run_dir, {"status": "training", "epoch": 0, "arch": cfg.train.arch, "started": datetime.now().isoformat()}


def run(cfg: Config, fresh: bool = False, config_path: Path | None = None, finish: bool = False,
        new_epochs: int | None = None, extend: int | None = None, set_keys: tuple[str, ...] = ()) -> Path:
    """Train (or resume) and return the run directory.

    ``finish``: stop the unfinished run where it is (a manual early stop): evaluate its best checkpoint
    and write the outputs without training further. ``new_epochs``: when resuming, change the run's
    length (the cosine schedule is rebuilt for it and continues from the current step). ``extend``:
    continue the newest *finished* run to this many epochs in all: its last checkpoint trains on with
    the cosine schedule rebuilt for the new length (a warm restart: the LR rises to where the longer
    curve is at this epoch, then decays again); model.keras is replaced only by a better epoch.
    ``set_keys``: the keys given with ``--set``; see :func:`train.resume.resume_overrides`.
    """
    runs_dir = resolve_path(cfg.train.runs_dir)
    run_dir = pick_run(runs_dir, cfg.train.arch, fresh, finish, extend)
    resuming = run_dir is not None
    if run_dir is not None:
        cfg, state = reopen(run_dir, cfg, set_keys, extend or new_epochs, extend, finish)
    # the data first: a missing or broken dataset must not leave an empty run directory behind
    data = load_configured(cfg.data)
    if run_dir is None:
        run_dir, state = start_run(runs_dir, cfg)
    return fit(run_dir, cfg, state, data, resuming, finish)


def _soft_targets(cfg: Config, data: FerData, state: dict):
    """The teachers' soft targets of the training faces (``teacher.models``), recorded in the run's state."""
    from fer_edge.train.teachers import soft_targets
    try:
        soft = soft_targets(data.train.x, data.train.y, cfg.teacher, resolve_path)
    except FileNotFoundError as exc:
        raise TrainError(str(exc)) from None
    if soft.shape[1] != len(data.labels):
        raise TrainError(f"teacher.models answer in {soft.shape[1]} classes and data.labels "
                         f"{cfg.data.labels!r} has {len(data.labels)}: use teachers trained on the same labels")
    state["teacher"] = {"models": list(cfg.teacher.models), "temperature": cfg.teacher.temperature,
                        "hard_weight": cfg.teacher.hard_weight, "mirror": cfg.teacher.mirror}
    print(f"distilling from {len(cfg.teacher.models)} teacher(s), temperature {cfg.teacher.temperature}, "
          f"hard label weight {cfg.teacher.hard_weight}")
    return soft


def fit(run_dir: Path, cfg: Config, state: dict, data: FerData, resuming: bool, finish: bool = False) -> Path:
    import keras                              # here, after the data loaded: a data error is told before TensorFlow starts
    import tensorflow as tf

    from fer_edge.train.finalize import finalize

    from fer_edge.train.callbacks import make_callbacks
    from fer_edge.train.plots import plot_class_distribution
    tcfg = cfg.train
    # a resumed run must not replay the shuffle order, augmentation and dropout of its first epochs:
    # seeding with (seed + epochs done) gives each sitting its own stream (a fresh run: seed itself)
    stream_seed = tcfg.seed + state["epoch"]
    keras.utils.set_random_seed(stream_seed)
    precision = pick_precision(tcfg.precision)
    keras.mixed_precision.set_global_policy(precision)
    state["precision"] = precision
    state["data"] = {"form": data.form, "source": data.source, "labels": list(data.labels), "train": data.train.counts(),
                     "val": data.val.counts(), "test": data.test.counts()}
    plot_class_distribution(data, run_dir / "class_distribution.png")

    if finish:
        print(f"finishing {run_dir} after epoch {state['epoch']}/{tcfg.epochs} with its best checkpoint")
        finalize(run_dir, cfg, data, state)
        return run_dir
    soft = _soft_targets(cfg, data, state) if cfg.teacher.models else None
    train_ds, val_ds = make_datasets(data, tcfg, stream_seed, soft, cfg.teacher.hard_weight)
    steps = int(tf.data.experimental.cardinality(train_ds).numpy())
    if resuming:
        print(f"shuffling, augmentation and dropout seeded with {stream_seed} (train.seed + {state['epoch']} epochs done)")
        model = keras.models.load_model(run_dir / LAST_FILE)
        if state.get("schedule_changes"):      # the saved optimizer holds the schedule it was built with
            model.optimizer.learning_rate = learning_rate(tcfg, steps)
    else:
        from fer_edge.train.model import build_model
        model = compile_model(build_model(tcfg.arch, tcfg.dropout, tcfg.bn_momentum, len(data.labels)),
                              tcfg, steps)
        state["params"] = int(model.count_params())
        write_json_atomic(run_dir / STATE_FILE, state)
    print(f"model {tcfg.arch}: {model.count_params():,} params, precision {precision}, {steps} steps/epoch")

    if val_ds is None and not resuming:
        print(f"final fit: no validation split (data.val_fraction 0); all {len(data.train)} training faces train "
              f"for the whole schedule of {tcfg.epochs} epochs"
              + (f", and the average of the last {tcfg.average_last} becomes the model" if tcfg.average_last >= 2
                 else ", and the last epoch becomes the model"))
    if state["epoch"] < tcfg.epochs:
        callbacks = make_callbacks(run_dir, tcfg, state, resuming, has_val=val_ds is not None)
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=tcfg.epochs, initial_epoch=state["epoch"],
                      callbacks=callbacks, verbose=tcfg.verbose)
        except KeyboardInterrupt:
            print(f"\ninterrupted after epoch {state['epoch']}; `make train` resumes from {run_dir / LAST_FILE}")
            raise SystemExit(130)
    finalize(run_dir, cfg, data, state)
    return run_dir
