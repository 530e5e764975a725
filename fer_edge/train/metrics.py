"""Scores of predictions on a labelled split: accuracy, per-class precision/recall/F1, macro-F1, the
confusion matrix, calibration (expected calibration error, cross-entropy to a target distribution),
and a Keras model's probabilities. Imports nothing else from train/."""
from __future__ import annotations

import numpy as np

from fer_edge.common.labels import LABELS


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...] = LABELS) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix."""
    k = len(labels)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class, f1s = {}, []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                           "f1": round(float(f1), 4), "support": int(cm[i, :].sum())}
        if cm[i, :].sum() or cm[:, i].sum():        # a class absent from truth and predictions has no F1
            f1s.append(f1)
    return {"accuracy": round(float((y_true == y_pred).mean()) if y_true.size else 0.0, 4),
            "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 4),
            "per_class": per_class, "confusion_matrix": cm.tolist(), "labels": list(labels),
            "n": int(y_true.size)}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE: the mean gap between confidence and accuracy over equal-width confidence bins, weighted by
    the faces in each bin (Guo et al. 2017)."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(float((pred[m] == y_true[m]).mean()) - float(conf[m].mean()))
    return float(ece)


def cross_entropy(probs: np.ndarray, target: np.ndarray) -> float:
    """Mean cross-entropy (nats) from the predicted probabilities to a target distribution per face."""
    return float(-(target * np.log(np.clip(probs, 1e-7, 1.0))).sum(1).mean())


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N,48,48) uint8 -> (N, labels) probabilities from a Keras model taking raw pixels."""
    return np.asarray(model.predict(x[..., None].astype(np.float32), batch_size=batch_size, verbose=0))
