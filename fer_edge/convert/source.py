"""Which Keras model to convert, and loading it with the checks the edge relies on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fer_edge.common.labels import LABEL_SETS
from fer_edge.common.preprocess import INPUT_SIZE
from fer_edge.convert.errors import ConvertInputError
from fer_edge.train.rundir import BEST_FILE, STATE_FILE, newest_finished_model

def newest_finished_run(runs_dir: Path) -> Path:
    """model.keras of the newest run in ``runs_dir`` whose state.json says "finished"."""
    model = newest_finished_model(Path(runs_dir))
    if model is None:
        raise ConvertInputError(f"no finished training run with a {BEST_FILE} in {runs_dir}. Train one with "
                                "`make train` (and let it finish), or pass MODEL=path/to/model.keras.")
    return model


def resolve_model_path(setting: str, runs_dir: Path) -> Path:
    """convert.model ('auto' or a path, relative to the repository root) -> an existing .keras file."""
    from fer_edge.common.config import resolve_path
    path = newest_finished_run(runs_dir) if setting == "auto" else resolve_path(setting)
    if not path.is_file():
        raise ConvertInputError(f"Keras model {path} not found. Pass MODEL=runs/<run>/model.keras "
                                "(or set convert.model in config.yaml), or train one with `make train`.")
    return path


def run_info(model_path: Path) -> dict:
    """The training run a model came from (its directory and architecture), when known."""
    state = model_path.parent / STATE_FILE
    from fer_edge.common.config import display_path
    info: dict[str, Any] = {"run_dir": display_path(model_path.parent), "arch": None}
    if state.is_file():
        try:
            st = json.loads(state.read_text())
        except (OSError, json.JSONDecodeError):
            return info
        info["arch"] = st.get("arch")
        data = st.get("data") or {}
        if isinstance(data.get("labels"), list):
            info["labels"] = [str(x) for x in data["labels"]]
        if isinstance(data.get("train"), list):
            info["train_counts"] = [int(n) for n in data["train"]]
        val = data.get("val")
        if isinstance(val, list):
            # 0: a final fit that also trained on the validation hold-out (it cannot judge choices made there).
            info["val_images"] = int(sum(val))
    return info


def labels_for(model, source: dict) -> tuple[str, ...]:
    """The labels the model was trained on: its run's record, else the label set of its output's size."""
    if source.get("labels"):
        return tuple(source["labels"])
    size = int(model.outputs[0].shape[-1])
    for labels in LABEL_SETS.values():
        if len(labels) == size:
            return labels
    return LABEL_SETS["fer2013"]           # no set fits: check_shapes names the mismatch


def check_shapes(model, path: Path, labels: tuple[str, ...]) -> None:
    """The edge feeds one 48x48x1 face and reads one probability per label: refuse anything else."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConvertInputError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} "
                                "outputs; the edge needs exactly one image input and one output")
    in_shape = tuple(model.inputs[0].shape[1:])
    if in_shape != (INPUT_SIZE, INPUT_SIZE, 1):
        raise ConvertInputError(f"{path}: model input is {'x'.join(map(str, in_shape))}, the edge feeds "
                                f"{INPUT_SIZE}x{INPUT_SIZE}x1 grayscale faces. Train it with `make train` "
                                "(fer_edge/train/model.py architectures) or pass a model built for 48x48x1 input.")
    out_shape = tuple(model.outputs[0].shape[1:])
    if out_shape != (len(labels),):
        raise ConvertInputError(f"{path}: model output shape {out_shape} does not match the {len(labels)} labels "
                                f"({', '.join(labels)}). Pass a model trained on these classes.")


def load_keras_model(path: Path, source: dict) -> tuple[object, tuple[str, ...]]:
    """Load, check and return a float32 copy of the model (mixed-precision runs save bfloat16) and its labels."""
    import keras

    from fer_edge.train.model import to_float32
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertInputError(f"cannot load Keras model {path}: {first[:300]}. The file is corrupt or not a "
                                ".keras model: re-train with `make train` or pass another MODEL=") from exc
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        check_shapes(model, path, ())
    labels = labels_for(model, source)
    check_shapes(model, path, labels)
    return to_float32(model), labels
