"""Weight averaging over the last epochs of a run (stochastic weight averaging on the cosine tail).

The weights of the last ``train.average_last`` epochs are kept in ``runs/<id>/epochs/``. At the end of
training their element-wise mean becomes a candidate model; its BatchNorm statistics are re-estimated
on clean training faces (the mean of per-epoch running statistics does not match the averaged
weights), and it replaces the best single epoch only if its validation accuracy is higher. The test
split plays no part in the choice. A final fit (data.val_fraction 0) has no validation split to judge
by: there the average is the model, as fixed in advance by ``train.average_last``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

EPOCHS_DIR = "epochs"
_NAME = re.compile(r"epoch-(\d+)\.weights\.h5$")


def epoch_file(run_dir: Path, epoch: int) -> Path:
    """Where the weights after (1-based) ``epoch`` are kept."""
    return Path(run_dir) / EPOCHS_DIR / f"epoch-{epoch:03d}.weights.h5"


def kept_epochs(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, file) of the kept per-epoch weights, oldest first."""
    d = Path(run_dir) / EPOCHS_DIR
    found = [(int(m.group(1)), p) for p in d.glob("epoch-*.weights.h5") if (m := _NAME.search(p.name))]
    return sorted(found)


def prune(run_dir: Path, keep: int, done: int) -> None:
    """Keep the files of the last ``keep`` epochs up to ``done``; drop older ones and any after ``done``
    (left by an epoch that was trained again after a resume)."""
    for epoch, path in kept_epochs(run_dir):
        if epoch <= done - keep or epoch > done:
            path.unlink(missing_ok=True)


def average_weights(model, files: list[Path]) -> list[np.ndarray]:
    """The element-wise mean of the weight files (loaded one at a time into ``model``)."""
    total: list[np.ndarray] | None = None
    for f in files:
        model.load_weights(f)
        w = [np.asarray(v, np.float64) for v in model.get_weights()]
        total = w if total is None else [a + b for a, b in zip(total, w)]
    if total is None:
        raise ValueError("no weight files to average")
    return [(t / len(files)).astype(np.float32) for t in total]


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> None:
    """Set every BatchNormalization layer's moving mean/variance to the statistics of its input on
    ``x`` (raw pixels, (N,48,48) uint8), layer by layer in graph order so each sees the re-estimated
    layers before it. Inference mode throughout: dropout is off, nothing else changes."""
    import keras
    xs = x[..., None].astype(np.float32)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        feats = keras.Model(model.inputs, layer.input).predict(xs, batch_size=batch_size, verbose=0)
        feats = np.asarray(feats, np.float64).reshape(-1, feats.shape[-1])
        layer.moving_mean.assign(feats.mean(0).astype(np.float32))
        layer.moving_variance.assign(feats.var(0).astype(np.float32))


CALIBRATION_FACES = 8192     # clean training faces for the BatchNorm re-estimate (seeded sample)


def try_average(run_dir: Path, best, data, keep: int, done: int):
    """Average the kept weights of the last ``keep`` epochs up to ``done``; return (model, info).

    ``best`` is the best single epoch as a float32 model. The average is returned instead only if its
    validation accuracy is higher, or always when there is no validation split (a final fit). ``info``
    (None when there is nothing to average) records the epochs averaged, both validation accuracies
    (None without validation) and whether the average was used.
    """
    kept = [(e, p) for e, p in kept_epochs(run_dir) if done - keep < e <= done] if keep else []
    if len(kept) < 2:
        return best, None
    import keras
    from fer_edge.train.evaluate import predict_probs

    cand = keras.models.clone_model(best)
    cand.set_weights(average_weights(cand, [p for _, p in kept]))
    idx = np.random.default_rng(0).permutation(len(data.train))[:CALIBRATION_FACES]
    recalibrate_batchnorm(cand, data.train.x[np.sort(idx)])
    span = f"weight average of epochs {kept[0][0]}-{kept[-1][0]} ({len(kept)})"
    if len(data.val) == 0:
        acc_best = acc_avg = None
        used, verdict = True, "no validation split (a final fit)"
    else:
        acc_best, acc_avg = (float((predict_probs(m, data.val.x).argmax(1) == data.val.y).mean()) for m in (best, cand))
        used, verdict = acc_avg > acc_best, f"validation accuracy {acc_avg:.4f} vs best epoch {acc_best:.4f}"
    r4 = lambda a: None if a is None else round(a, 4)  # noqa: E731
    info = {"epochs": [kept[0][0], kept[-1][0]], "count": len(kept), "val_accuracy": r4(acc_avg),
            "best_epoch_val_accuracy": r4(acc_best), "used": used}
    print(f"{span}: {verdict} -> {'using the average' if used else 'keeping the best epoch'}")
    return (cand if used else best), info
