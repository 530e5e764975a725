"""Scores of predictions on a labelled split: accuracy, per-class precision/recall/F1, macro-F1 and the
confusion matrix, and a Keras model's probabilities. Imports nothing else from train/."""
from __future__ import annotations

import numpy as np

from fer_edge.common.labels import LABELS, NUM_CLASSES


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class, f1s = {}, []
    for i, name in enumerate(LABELS):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                           "f1": round(float(f1), 4), "support": int(cm[i, :].sum())}
        f1s.append(f1)
    return {"accuracy": round(float((y_true == y_pred).mean()), 4), "macro_f1": round(float(np.mean(f1s)), 4),
            "per_class": per_class, "confusion_matrix": cm.tolist(), "labels": list(LABELS),
            "n": int(y_true.size)}


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N,48,48) uint8 -> (N,7) probabilities from a Keras model taking raw pixels."""
    return np.asarray(model.predict(x[..., None].astype(np.float32), batch_size=batch_size, verbose=0))
