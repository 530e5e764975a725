"""Emotion classification of face crops with the int8 TFLite model, checked against its contract at load.

One interpreter for the whole run (building one per frame is the classic Pi mistake). The model is
run by ``common.model_runner.TfliteModel``, the same code the converter's parity gate measures; a model
swapped without its contract is caught at start, not by wrong labels in the log.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_edge.common.contract import ContractError, load_contract
from fer_edge.common.model_runner import ModelMismatchError, TfliteModel
from fer_edge.common.preprocess import preprocess_face


class EmotionClassifier:
    """Face crops -> probabilities in the contract's label order."""

    def __init__(self, model_path: str | Path, threads: int = 1, flip_tta: bool = False):
        self.model_path = Path(model_path)
        self.contract = load_contract(self.model_path)
        self.mirror_inside = self.contract.mirror_inside   # the model averages with the mirror itself
        # Also classify the mirrored face and average (about 2x the time); never on top of a model that does.
        self.flip_tta = flip_tta and not self.mirror_inside
        self.model = TfliteModel(self.model_path, threads=threads, contract=self.contract)
        self.interpreter = self.model.interpreter
        self._size = self.contract.height
        self.labels: tuple[str, ...] = self.contract.labels

    def info(self) -> dict:
        """Which model this is, for a fleet to check what each device runs (``/api/health``)."""
        c = self.contract
        metrics = c.metrics.get(c.precision, {})
        return {"file": self.model_path.name, "sha256": c.sha256[:12], "precision": c.precision,
                "mirror_inside": self.mirror_inside, "run": c.raw.get("source", {}).get("run_dir"),
                "test_accuracy": metrics.get("accuracy")}

    def classify(self, crops: list[np.ndarray], flip: bool | None = None) -> np.ndarray:
        """(N, num_labels) float32 probabilities, one row per crop (each row sums to 1).

        With ``flip`` (default: ``flip_tta``) each row is the mean of the face's and its horizontal
        mirror's probabilities; a model with the mirror inside gives that from one invoke.
        """
        flip = (self.flip_tta if flip is None else flip) and not self.mirror_inside
        out = np.empty((len(crops), len(self.labels)), np.float32)
        probs = self.model.probs
        for i, crop in enumerate(crops):
            face = preprocess_face(crop, self._size)
            out[i] = (probs(face) + probs(face[:, ::-1])) / 2 if flip else probs(face)
        return out


__all__ = ["EmotionClassifier", "ModelMismatchError", "ContractError"]
