"""Emotion classification with the int8 TFLite model, checked against its contract at load.

One interpreter for the whole run (building one per frame is the classic Pi mistake). Input and
output quantisation come from the interpreter itself and must agree with the contract JSON, so a
model swapped without its contract is caught at start, not by wrong labels in the log.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_edge.common.contract import ContractError, load_contract
from fer_edge.common.interpreter import make_interpreter
from fer_edge.common.preprocess import preprocess_face

_DTYPES = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}


class ModelMismatchError(ValueError):
    """The .tflite does not match its contract (shape, dtype, quantisation or number of labels)."""


def _check(cond: bool, model: Path, what: str) -> None:
    if not cond:
        raise ModelMismatchError(f"{model} does not match its contract {model.with_suffix('.json')}: {what}. "
                                 "Copy the .tflite and its .json together, or re-run `make tflite`.")


class EmotionClassifier:
    """Face crops -> probabilities in the contract's label order."""

    def __init__(self, model_path: str | Path, threads: int = 1, flip_tta: bool = False):
        self.model_path = Path(model_path)
        self.flip_tta = flip_tta       # also classify the mirrored face and average (about 2x the time)
        self.contract = load_contract(self.model_path)
        self.interpreter = make_interpreter(self.model_path, num_threads=threads)
        c, m = self.contract, self.model_path
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        _check(len(inputs) == 1 and len(outputs) == 1, m, f"{len(inputs)} inputs / {len(outputs)} outputs, expected 1 / 1")
        inp, out = inputs[0], outputs[0]
        shape = tuple(int(s) for s in inp["shape"])
        _check(shape[1:] == (c.height, c.width, c.channels), m,
               f"input shape {shape} but the contract says {c.height}x{c.width}x{c.channels}")
        for name, det, q in (("input", inp, c.input), ("output", out, c.output)):
            want = _DTYPES.get(q.dtype)
            _check(want is not None and det["dtype"] == want, m,
                   f"{name} dtype {np.dtype(det['dtype']).name} but the contract says {q.dtype}")
            scale, zp = det["quantization"]
            if want is not np.float32:
                _check(scale > 0 and abs(scale - q.scale) <= 1e-6 * max(1.0, abs(q.scale)) and int(zp) == q.zero_point, m,
                       f"{name} quantisation scale={scale:g} zero_point={zp} but the contract says "
                       f"scale={q.scale:g} zero_point={q.zero_point}")
        n_out = int(out["shape"][-1])
        _check(n_out == len(c.labels), m, f"{n_out} outputs but {len(c.labels)} labels")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = _DTYPES[c.input.dtype], _DTYPES[c.output.dtype]
        self._in_q, self._out_q = c.input, c.output
        self._size = c.height
        self.labels: tuple[str, ...] = c.labels

    def _quantize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (the model's raw 0..255 input) -> the input tensor's dtype."""
        x = pixels.astype(np.float32)
        if self._in_dtype is np.float32:
            return x
        info = np.iinfo(self._in_dtype)
        q = np.round(x / self._in_q.scale) + self._in_q.zero_point
        return np.clip(q, info.min, info.max).astype(self._in_dtype)

    def _probs(self, face: np.ndarray) -> np.ndarray:
        """One preprocessed (size, size) uint8 face -> its dequantised probabilities, summing to 1."""
        it = self.interpreter
        it.set_tensor(self._in_index, self._quantize(face)[None, :, :, None])
        it.invoke()
        y = it.get_tensor(self._out_index)[0].astype(np.float32)
        if self._out_dtype is not np.float32:
            y = (y - self._out_q.zero_point) * self._out_q.scale
        y = np.clip(y, 0.0, None)
        s = float(y.sum())
        # int8 softmax outputs are steps of 1/256: renormalise so each row sums to exactly 1.
        return y / s if s > 0 else np.full(len(self.labels), 1.0 / len(self.labels), np.float32)

    def classify(self, crops: list[np.ndarray], flip: bool | None = None) -> np.ndarray:
        """(N, num_labels) float32 probabilities, one row per crop (each row sums to 1).

        With ``flip`` (default: ``flip_tta``) each row is the mean of the face's and its horizontal
        mirror's probabilities.
        """
        flip = self.flip_tta if flip is None else flip
        out = np.empty((len(crops), len(self.labels)), np.float32)
        for i, crop in enumerate(crops):
            face = preprocess_face(crop, self._size)
            out[i] = (self._probs(face) + self._probs(face[:, ::-1])) / 2 if flip else self._probs(face)
        return out


__all__ = ["EmotionClassifier", "ModelMismatchError", "ContractError"]
