"""Temperature scaling and how well probabilities are calibrated (ECE, Brier score, reliability bins).

`fit_temperatures` divides each label's logit by a temperature chosen to minimise the negative log-likelihood
on validation data (Guo et al. 2017, "On calibration of modern neural networks"; per label for sigmoid
outputs, one shared temperature for a softmax, where per-class temperatures would no longer sum to one).
Temperatures keep every ranking, so AUROC is unchanged; thresholds are chosen again on the calibrated
outputs. The checkpoint stores them, and `fold_temperatures` divides the model's last layer by them when it
is loaded, so every way of serving it (ONNX Runtime, the Grad-CAM split) gives calibrated probabilities.

Written afresh here; works from probabilities (their logits recovered), so any saved predictions will do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from ml.data.base import Task

ECE_BINS = 15
_EPS = 1e-7


def logits_of(probs: np.ndarray, task: Task | str) -> np.ndarray:
    """Logits that give `probs` back (softmax: up to a constant per row, which softmax ignores)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) if Task(task) is Task.MULTICLASS else np.log(p) - np.log1p(-p)


def scaled(probs: np.ndarray, temperatures: np.ndarray, task: Task | str) -> np.ndarray:
    """Probabilities after dividing each label's logit by its temperature."""
    z = logits_of(probs, task) / np.asarray(temperatures, dtype=np.float64)[None, :]
    if Task(task) is Task.MULTICLASS:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def _nll(probs: np.ndarray, labels: np.ndarray, task: Task) -> float:
    p = np.clip(probs.astype(np.float64), _EPS, 1 - _EPS)
    if task is Task.MULTICLASS:
        return float(-np.log(p[np.arange(len(p)), np.argmax(labels, axis=1)]).mean())
    known = ~np.isnan(labels)
    y = np.nan_to_num(labels)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p))[known].mean())


def fit_temperatures(probs: np.ndarray, labels: np.ndarray, task: Task | str) -> np.ndarray:
    """Temperatures (L,) minimising the validation negative log-likelihood; 1 for a label without both
    classes among its known values."""
    task = Task(task)
    n_labels = probs.shape[1]

    def best(cols: list[int], temps_for: callable) -> float:  # type: ignore[valid-type]
        result = minimize_scalar(lambda log_t: _nll(scaled(probs, temps_for(np.exp(log_t)), task)[:, cols],
                                                     labels[:, cols], task),
                                 bounds=(np.log(0.05), np.log(20.0)), method="bounded")
        return float(np.exp(result.x))

    if task is Task.MULTICLASS:
        return np.full(n_labels, best(list(range(n_labels)), lambda t: np.full(n_labels, t)))
    temps = np.ones(n_labels)
    for j in range(n_labels):
        y = labels[:, j][~np.isnan(labels[:, j])]
        if y.size and 0 < y.sum() < y.size:
            temps[j] = best([j], lambda t, j=j: np.where(np.arange(n_labels) == j, t, 1.0))
    return temps


def _pairs(probs: np.ndarray, labels: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs: the top class and whether it was right for a softmax; every known
    (image, label) probability and its 0/1 truth otherwise."""
    if task is Task.MULTICLASS:
        return probs.max(axis=1), (probs.argmax(axis=1) == labels.argmax(axis=1)).astype(np.float64)
    known = ~np.isnan(labels)
    return probs[known], labels[known]


def reliability(probs: np.ndarray, labels: np.ndarray, task: Task | str, bins: int = ECE_BINS) -> dict[str, Any]:
    """Equal-width bins of confidence: count, mean confidence and observed frequency per bin, and the ECE
    (the count-weighted mean gap between the two)."""
    conf, outcome = _pairs(np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64), Task(task))
    which = np.minimum((conf * bins).astype(int), bins - 1)
    counts, mean_conf, freq = [], [], []
    ece = 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        counts.append(n)
        mean_conf.append(float(conf[sel].mean()) if n else None)
        freq.append(float(outcome[sel].mean()) if n else None)
        if n:
            ece += n / max(len(conf), 1) * abs(float(conf[sel].mean()) - float(outcome[sel].mean()))
    return {"ece": ece, "counts": counts, "confidence": mean_conf, "frequency": freq}


def brier(probs: np.ndarray, labels: np.ndarray, task: Task | str) -> float:
    """Mean squared error of the probabilities: summed over classes per image for a softmax, over every
    known (image, label) pair otherwise."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if Task(task) is Task.MULTICLASS:
        return float(((probs - labels) ** 2).sum(axis=1).mean())
    known = ~np.isnan(labels)
    return float(((probs - np.nan_to_num(labels)) ** 2)[known].mean())


def calibration_summary(before: np.ndarray, after: np.ndarray, labels: np.ndarray, task: Task | str) -> dict[str, Any]:
    """ECE (15 bins) and Brier score before and after, and both reliability tables, for one split."""
    rb, ra = reliability(before, labels, task), reliability(after, labels, task)
    return {"ece_before": rb["ece"], "ece_after": ra["ece"], "brier_before": brier(before, labels, task),
            "brier_after": brier(after, labels, task), "n": int(len(labels)),
            "reliability_before": rb, "reliability_after": ra}


def fold_temperatures(model: nn.Module, head: nn.Module, temperatures: list[float] | np.ndarray) -> None:
    """Divide the outputs of `head`'s last Linear or Conv2d layer (one output per label) by the temperatures,
    in place: the model then gives calibrated logits. Layers after it must be positively homogeneous
    (ReLU, pooling), as in every head here."""
    layers = [m for m in head.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    temps = torch.as_tensor(np.asarray(temperatures, dtype=np.float32))
    if not layers or layers[-1].weight.shape[0] != temps.numel():
        raise ValueError(f"{type(model).__name__}: no last layer with {temps.numel()} outputs to calibrate")
    last = layers[-1]
    with torch.no_grad():
        shape = (-1,) + (1,) * (last.weight.ndim - 1)
        last.weight.div_(temps.view(shape).to(last.weight))
        if last.bias is not None:
            last.bias.div_(temps.to(last.bias))
