"""Mirror averaging built into the converted model (``convert.mirror``).

A face and its horizontal mirror go through the network as one batch of two inside the graph and the
two probability rows are averaged, so the edge gets the flip-averaged answer from one invoke of a
model whose input and output are those of the plain one (1x48x48x1 -> 1x7). Whether to build it in is
decided on the validation hold-out (``auto``): the test split stays for the report. A final fit trained on
that hold-out too, so ``auto`` leaves it plain; it can take the choice another converted model made on a
hold-out instead (``convert.mirror`` set to that model's .tflite), and its contract records whose choice
it was and the evidence it was made on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def with_mirror_average(model):
    """``model`` (faces -> probabilities) wrapped so each face's output is the mean of its own and its
    mirror image's probabilities; any batch size."""
    import keras
    from keras import ops

    inp = keras.Input(model.input_shape[1:], name="face")
    both = ops.concatenate([inp, ops.flip(inp, axis=2)], axis=0)           # (2N, H, W, C)
    probs = model(both)                                                     # (2N, labels)
    out = ops.mean(ops.reshape(probs, (2, -1, probs.shape[-1])), axis=0)    # (N, labels)
    return keras.Model(inp, out, name=f"{model.name}_mirror_average")


@dataclass(frozen=True)
class MirrorChoice:
    inside: bool
    reason: str
    evidence: dict      # what the choice was made on, for the contract


def inherited(model_path) -> MirrorChoice:
    """The choice recorded in the contract of the converted model ``model_path`` (a .tflite with its
    contract beside it). Raises ContractError when that model or its contract is missing or damaged."""
    from fer_edge.common.config import display_path
    from fer_edge.common.contract import load_contract

    c = load_contract(model_path)
    made = c.raw.get("mirror_choice") or {}
    made_on = made.get("reason", "its contract does not say why")
    where = display_path(model_path)
    return MirrorChoice(c.mirror_inside, f"the choice of {where} ({made_on})",
                        {"mode": "inherited", "from": where, "from_sha256": c.sha256,
                         "from_choice": {k: v for k, v in made.items() if k != "reason"}})


def choose(mode, model, val, predict_probs, final_fit: bool = False) -> MirrorChoice:
    """Build the mirror in? ``mode``: True, False or "auto" (only when it is more accurate on the
    validation hold-out ``val``, a Split or None when there is none). ``final_fit``: the model trained on
    that hold-out too, so its accuracy there cannot decide anything."""
    if mode is True:
        return MirrorChoice(True, "convert.mirror is true", {"mode": "true"})
    if mode is False:
        return MirrorChoice(False, "convert.mirror is false", {"mode": "false"})
    if final_fit:
        return MirrorChoice(False, "the model trained on the validation hold-out too (a final fit), so its accuracy "
                                   "there cannot decide; set convert.mirror to true, false or the .tflite of a model "
                                   "converted with a hold-out to take its choice", {"mode": "auto", "final_fit": True})
    if val is None or len(val) == 0:
        return MirrorChoice(False, "no validation hold-out to decide on (data.val_fraction is 0)", {"mode": "auto"})
    plain = predict_probs(model, val.x)
    flipped = predict_probs(model, np.ascontiguousarray(val.x[:, :, ::-1]))
    acc = float((plain.argmax(1) == val.y).mean())
    acc_mirror = float((((plain + flipped) / 2).argmax(1) == val.y).mean())
    evidence = {"mode": "auto", "val_images": int(len(val)), "val_accuracy": round(acc, 4),
                "val_accuracy_mirror": round(acc_mirror, 4)}
    inside = acc_mirror > acc
    return MirrorChoice(inside, f"validation accuracy {acc * 100:.2f}% alone, {acc_mirror * 100:.2f}% with the "
                                f"mirror ({len(val)} faces)", evidence)
