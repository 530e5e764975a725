"""The one code path that runs the emotion model: check it against its contract, quantise the face,
invoke, dequantise.

The edge (``edge.face_classifier.EmotionClassifier``), the converter's parity gate and latency figure, and
the model check a Pi runs at install time (``tools.check``) all go through ``TfliteModel``, so the gate
tests the code the edge runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.common.contract import ContractError, ModelContract, load_contract
from fer_edge.common.interpreter import dequantize, make_interpreter, quantize
from fer_edge.common.invocation import convert_hint


class ModelMismatchError(ContractError):
    """The .tflite does not match its contract (shape, dtype, quantisation or number of labels)."""


def check_against_contract(interp: Any, contract: ModelContract, model: Path) -> None:
    """The model as the interpreter sees it must be the one its contract describes. Raises
    ModelMismatchError naming the file, what differs, and the fix."""
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ModelMismatchError(f"{model} does not match its contract {model.with_suffix('.json')}: {what}. "
                                     f"Copy the .tflite and its .json together, or re-run {convert_hint()}.")
    c = contract
    inputs, outputs = interp.get_input_details(), interp.get_output_details()
    need(len(inputs) == 1 and len(outputs) == 1, f"{len(inputs)} inputs / {len(outputs)} outputs, expected 1 / 1")
    inp, out = inputs[0], outputs[0]
    shape = tuple(int(s) for s in inp["shape"])
    need(shape[1:] == (c.height, c.width, c.channels),
         f"input shape {shape} but the contract says {c.height}x{c.width}x{c.channels}")
    for name, det, q in (("input", inp, c.input), ("output", out, c.output)):
        dtype = np.dtype(det["dtype"]).name
        need(dtype == q.dtype, f"{name} dtype {dtype} but the contract says {q.dtype}")
        scale, zp = det["quantization"]
        if dtype != "float32":
            need(scale > 0 and np.isclose(scale, q.scale, rtol=1e-6, atol=0) and int(zp) == q.zero_point,
                 f"{name} quantisation scale={scale:g} zero_point={zp} but the contract says "
                 f"scale={q.scale:g} zero_point={q.zero_point}")
    n_out = int(out["shape"][-1])
    need(n_out == len(c.labels), f"{n_out} outputs but {len(c.labels)} labels")


class TfliteModel:
    """A .tflite emotion model: preprocessed (size, size) uint8 faces -> probabilities.

    With ``contract`` the model is checked against it first (the edge, the install check); without,
    its quantisation is read from the file alone (the converter, before the contract is written).
    """

    def __init__(self, model_path: str | Path, threads: int = 1, contract: ModelContract | None = None):
        self.path = Path(model_path)
        self.interpreter = it = make_interpreter(self.path, num_threads=threads)
        if contract is not None:
            check_against_contract(it, contract, self.path)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        self._in, self._out = inp["index"], out["index"]
        self._in_dtype = np.dtype(inp["dtype"]).name
        self._in_q, self._out_q = inp["quantization"], out["quantization"]
        self.size = int(inp["shape"][1])
        self.num_outputs = int(out["shape"][-1])

    def quantize(self, face: np.ndarray) -> np.ndarray:
        """One (size, size) uint8 face (raw 0..255 pixels, the model rescales inside) -> the input tensor."""
        return quantize(face[None, :, :, None], self._in_dtype, *self._in_q)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Invoke on a quantised input; the raw output row."""
        it = self.interpreter
        it.set_tensor(self._in, tensor)
        it.invoke()
        row: np.ndarray = it.get_tensor(self._out)[0]
        return row

    def probs(self, face: np.ndarray) -> np.ndarray:
        """One face -> its dequantised probabilities, summing to 1."""
        y = np.clip(dequantize(self.run(self.quantize(face)), *self._out_q), 0.0, None)
        s = float(y.sum())
        # int8 softmax outputs are steps of 1/256: renormalise so each row sums to exactly 1.
        return y / s if s > 0 else np.full(self.num_outputs, 1.0 / self.num_outputs, np.float32)

    def probs_batch(self, faces: np.ndarray) -> np.ndarray:
        """(N, size, size) uint8 faces -> (N, outputs) float32."""
        out = np.empty((len(faces), self.num_outputs), np.float32)
        for i, face in enumerate(faces):
            out[i] = self.probs(face)
        return out


def check_model(model_path: str | Path, num_threads: int = 1) -> ModelContract:
    """Load ``model_path`` with its contract (sha256 included), cross-check them and run one face through
    it; returns the contract. Raises ContractError or ModelLoadError (both ValueError) naming the file
    and the fix. The converter runs it on what it wrote, the installer on what it is about to install."""
    model_path = Path(model_path)
    c = load_contract(model_path, verify_sha256=True)
    probs = TfliteModel(model_path, threads=num_threads, contract=c).probs(np.full((c.height, c.width), 128, np.uint8))
    if not np.isfinite(probs).all() or abs(float(probs.sum()) - 1.0) > 1e-3:
        raise ContractError(f"{model_path}: a test face gave no probabilities ({probs}): the runtime cannot run "
                            f"this model correctly; re-run {convert_hint()} or update ai-edge-litert")
    return c
