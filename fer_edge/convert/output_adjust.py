"""The output layer's last adjustments, folded into the converted model: a temperature and logit adjustment.

- **Logit adjustment** (``convert.logit_adjust``, tau): the logits minus tau x log(the training prior).
  tau > 0 lifts the classes the training data had few of (fear, disgust, contempt) against the common
  ones (neutral, happy); tau < 0 does the opposite. Chosen on the validation hold-out and kdef-dev
  (``python -m bench.tradeoff``), never on the test split.
- **Temperature** (``convert.temperature``, T): the logits divided by T so the confidence matches how
  often the model is right (and, under FER+ labels, the share of annotators who give that label).
  ``auto`` fits T on the validation hold-out: the T with the lowest cross-entropy to its targets.

Both are exact in the final Dense layer (softmax(W x + b) -> softmax((W x + b - tau log p) / T)), so the
converted model keeps one output, one invoke, and no extra operation.
"""
from __future__ import annotations

import numpy as np

FINAL_LAYER = "probs"
T_GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 241))


def adjust_probs(probs: np.ndarray, log_prior: np.ndarray, tau: float = 0.0, temperature: float = 1.0) -> np.ndarray:
    """What the folded model outputs, from the plain model's probabilities (rows sum to 1)."""
    z = (np.log(np.clip(probs, 1e-12, 1.0)) - tau * log_prior) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def adjusted_mean(views: list[np.ndarray], log_prior: np.ndarray, tau: float = 0.0,
                  temperature: float = 1.0) -> np.ndarray:
    """The folded model's output averaged over views of each face (the face and its mirror, when the
    mirror is inside the model): each view is adjusted, then the views are averaged."""
    return np.mean([adjust_probs(v, log_prior, tau, temperature) for v in views], axis=0)


def fit_temperature(views: list[np.ndarray], targets: np.ndarray, log_prior: np.ndarray, tau: float = 0.0) -> float:
    """The temperature on a grid from 0.25 to 4 with the lowest mean cross-entropy to ``targets``;
    ``views``: the plain model's probabilities of each view of the faces (see ``adjusted_mean``)."""
    best_t, best = 1.0, np.inf
    for t in T_GRID:
        p = adjusted_mean(views, log_prior, tau, float(t))
        ce = float(-(targets * np.log(np.clip(p, 1e-12, 1.0))).sum(1).mean())
        if ce < best:
            best_t, best = float(t), ce
    return round(best_t, 4)


def log_prior_of(counts) -> np.ndarray:
    """log of the class shares of the training faces (a class with none counts as one face)."""
    c = np.maximum(np.asarray(counts, np.float64), 1.0)
    return np.log(c / c.sum())


def fold_into_model(model, log_prior: np.ndarray, tau: float, temperature: float):
    """A copy of ``model`` whose final softmax layer gives ``adjust_probs`` of the original's output."""
    import keras
    if tau == 0 and temperature == 1:
        return model
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    layer = out.get_layer(FINAL_LAYER)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, (bias - tau * log_prior) / temperature])
    return out
