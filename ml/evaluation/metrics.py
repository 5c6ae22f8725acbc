"""Classification metrics as pure functions, plus an accumulator for batches.

AUROC is computed per label on rows whose label is known (NaN masked), then averaged over labels that
have both classes present. Operating thresholds are chosen per label on validation data and stored
with the checkpoint. (Pure function + accumulator pairs follow MONAI's metrics; per-label operating
thresholds follow torchxrayvision's `op_threshs`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ml.data.base import Task


def probabilities(logits: torch.Tensor, task: Task | str) -> torch.Tensor:
    """Softmax for multi-class, sigmoid otherwise."""
    logits = logits.float()
    return torch.softmax(logits, dim=1) if Task(task) is Task.MULTICLASS else torch.sigmoid(logits)


def _known(labels: np.ndarray, j: int) -> np.ndarray:
    return ~np.isnan(labels[:, j])


def per_class_auroc(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC per label over known rows; NaN where a label lacks positives or negatives."""
    from torchmetrics.functional.classification import binary_auroc  # slow to import; serving never needs it

    out = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        mask = _known(labels, j)
        y = labels[mask, j]
        if y.size == 0 or y.min() == y.max():
            continue
        out[j] = float(binary_auroc(torch.as_tensor(probs[mask, j]), torch.as_tensor(y).long()))
    return out


def rank_auroc(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`per_class_auroc` in pure numpy (Mann-Whitney U from average ranks, ties counted half).

    The same values, about a hundred times faster on small arrays: what a 1000-resample bootstrap needs.
    """
    out = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        mask = _known(labels, j)
        y, p = labels[mask, j] > 0.5, probs[mask, j]
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
        average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank of each distinct score
        rank_sum = average_rank[inverse][y].sum()
        out[j] = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def roc_curve(probs: np.ndarray, labels: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray] | None:
    from torchmetrics.functional.classification import binary_roc

    mask = _known(labels, j)
    y = labels[mask, j]
    if y.size == 0 or y.min() == y.max():
        return None
    fpr, tpr, _ = binary_roc(torch.as_tensor(probs[mask, j]), torch.as_tensor(y).long())
    return fpr.numpy(), tpr.numpy()


def _downsample(fpr: np.ndarray, tpr: np.ndarray, points: int = 200) -> tuple[list[float], list[float]]:
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return [round(float(v), 5) for v in fpr], [round(float(v), 5) for v in tpr]


YOUDEN_MID_TOLERANCE = 0.02  # in Youden's J, i.e. one point of balanced accuracy


def choose_thresholds(
    probs: np.ndarray, labels: np.ndarray, policy: str = "f1", target_sensitivity: float = 0.95
) -> np.ndarray:
    """Per-label operating threshold; 0.5 if undecidable.

    'f1': max F1. 'youden': max Youden's J (the highest cut reaching it). 'youden_mid': the median of
    the cuts whose J is within `YOUDEN_MID_TOLERANCE` of the max: on a nearly separable validation set
    many cuts are about as good, and the one in the middle of that range keeps a margin on both sides
    instead of sitting on the edge of the validation scores. 'sensitivity': the highest cut whose
    sensitivity reaches `target_sensitivity`: all the specificity the validation set allows at that
    sensitivity, a margin that transfers when a test set collected apart scores its negatives higher.
    """
    out = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        mask = _known(labels, j)
        p, y = probs[mask, j], labels[mask, j]
        if y.size == 0 or y.min() == y.max():
            continue
        order = np.argsort(-p, kind="stable")
        p_sorted, y_sorted = p[order], y[order]
        tp = np.cumsum(y_sorted)
        fp = np.cumsum(1 - y_sorted)
        last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # cut only between distinct scores
        tp, fp, cut = tp[last_of_value], fp[last_of_value], p_sorted[last_of_value]
        pos, neg = y.sum(), (1 - y).sum()
        if policy == "sensitivity":
            out[j] = float(cut[int(np.argmax(tp / pos >= target_sensitivity - 1e-12))])
            continue
        if policy in ("youden", "youden_mid"):
            score = tp / pos - fp / neg
        else:
            score = 2 * tp / (2 * tp + fp + (pos - tp))
        if policy == "youden_mid":
            near = np.sort(cut[score >= score.max() - YOUDEN_MID_TOLERANCE])
            out[j] = float(near[(len(near) - 1) // 2])
        else:
            out[j] = float(cut[int(np.argmax(score))])
    return out


DECISION_GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 33))  # 1/4 to 4, evenly spaced in log


def weighted_argmax(probs: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Multi-class decisions: the class of largest `p_k * w_k` (plain arg-max when `weights` is None)."""
    return (probs if weights is None else probs * np.asarray(weights)[None, :]).argmax(axis=1)


def multiclass_macro_f1(truth: np.ndarray, decision: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes that occur in `truth` (as `classification_report` averages it)."""
    f1s = []
    for c in range(k):
        positive, chosen = truth == c, decision == c
        if not positive.any():
            continue
        tp = float((positive & chosen).sum())
        f1s.append(2 * tp / (positive.sum() + chosen.sum()))
    return float(np.mean(f1s)) if f1s else 0.0


def fit_decision_weights(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = DECISION_GRID,
                         sweeps: int = 3) -> np.ndarray:
    """Per-class decision weights (`weighted_argmax`) that maximise macro-F1 on these rows.

    The first class keeps weight 1 (only ratios matter). With three classes every pair of `grid` values is
    tried; with more, each class's weight in turn, `sweeps` times round. Ties go to the weights closest to
    plain arg-max (the smallest sum of |log w|), so a rule that gains nothing stays arg-max.
    """
    k = probs.shape[1]
    truth = np.nan_to_num(labels).argmax(axis=1)
    grid = np.asarray(grid, dtype=np.float64)
    if k < 2 or len(truth) == 0:
        return np.ones(k)

    def key(w: np.ndarray) -> tuple[float, float]:
        return multiclass_macro_f1(truth, weighted_argmax(probs, w), k), -float(np.abs(np.log(w)).sum())

    best = np.ones(k)
    if k == 3:
        for a in grid:
            for b in grid:
                w = np.array([1.0, a, b])
                if key(w) > key(best):
                    best = w
        return best
    for _ in range(sweeps):
        for j in range(1, k):
            for g in grid:
                w = best.copy()
                w[j] = g
                if key(w) > key(best):
                    best = w
    return best


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def _nanmean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def classification_report(
    probs: np.ndarray, labels: np.ndarray, task: Task | str, pathologies: list[str], thresholds: np.ndarray
) -> dict[str, Any]:
    """Per-class AUROC/precision/recall/F1 and the macro/micro summaries; accuracy and confusion for
    multi-class (arg-max decisions) and binary tasks (threshold decisions)."""
    task = Task(task)
    auroc = per_class_auroc(probs, labels)
    if task is Task.MULTICLASS:
        truth = np.nan_to_num(labels).argmax(axis=1)
        pred_idx = probs.argmax(axis=1)
        decisions = np.eye(labels.shape[1])[pred_idx]
    else:
        decisions = (probs >= thresholds[None, :]).astype(np.float64)

    per_class: dict[str, dict[str, float | None]] = {}
    totals = np.zeros(3)
    f1s, precisions, recalls = [], [], []
    for j, name in enumerate(pathologies):
        mask = _known(labels, j)
        y, d = labels[mask, j], decisions[mask, j]
        tp, fp, fn = float((d * y).sum()), float((d * (1 - y)).sum()), float(((1 - d) * y).sum())
        totals += (tp, fp, fn)
        precision, recall, f1 = _prf(tp, fp, fn)
        if y.sum() > 0:  # macro averages over classes that occur
            f1s.append(f1)
            precisions.append(precision)
            recalls.append(recall)
        per_class[name] = {
            "auroc": None if math.isnan(auroc[j]) else float(auroc[j]),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "threshold": float(thresholds[j]),
            "support": int(y.sum()),
            "n": int(mask.sum()),
        }
    micro_p, micro_r, micro_f1 = _prf(*totals)
    roc_curves = {}
    for j, name in enumerate(pathologies):
        curve = roc_curve(probs, labels, j)
        if curve is not None:
            fpr, tpr = _downsample(*curve)
            roc_curves[name] = {"fpr": fpr, "tpr": tpr, "auroc": per_class[name]["auroc"]}
    report: dict[str, Any] = {
        "task": str(task),
        "n": int(len(probs)),
        "mean_auroc": _nanmean(auroc),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "macro_precision": float(np.mean(precisions)) if precisions else 0.0,
        "macro_recall": float(np.mean(recalls)) if recalls else 0.0,
        "micro_f1": micro_f1,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "per_class": per_class,
        "roc_curves": roc_curves,
    }
    if task is Task.MULTICLASS:
        k = labels.shape[1]
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (truth, pred_idx), 1)
        report["accuracy"] = float((truth == pred_idx).mean()) if len(truth) else 0.0
        report["confusion_matrix"] = confusion.tolist()
    elif task is Task.BINARY:
        y = labels[:, 0]
        known = ~np.isnan(y)
        report["accuracy"] = float((decisions[known, 0] == y[known]).mean()) if known.any() else 0.0
        report["accuracy_at_0.5"] = float(((probs[known, 0] >= 0.5) == y[known]).mean()) if known.any() else 0.0
        yk, dk = y[known].astype(int), decisions[known, 0].astype(int)
        confusion = np.zeros((2, 2), dtype=np.int64)
        np.add.at(confusion, (yk, dk), 1)
        report["confusion_matrix"] = confusion.tolist()
    return report


def bootstrap_ci(
    probs: np.ndarray,
    labels: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of a vector statistic over rows (e.g. `per_class_auroc`)."""
    rng = np.random.default_rng(seed)
    samples = []
    n = len(probs)
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        samples.append(statistic(probs[idx], labels[idx]))
    stacked = np.asarray(samples, dtype=np.float64)
    alpha = (1 - confidence) / 2
    with np.errstate(all="ignore"):
        lo = np.nanquantile(stacked, alpha, axis=0)
        hi = np.nanquantile(stacked, 1 - alpha, axis=0)
    return lo, hi


class PredictionAccumulator:
    """Collects probabilities and labels over batches; `compute()` returns numpy arrays."""

    def __init__(self, task: Task | str) -> None:
        self.task = Task(task)
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self._probs.append(probabilities(logits.detach(), self.task).cpu())
        self._labels.append(labels.detach().float().cpu())

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._probs:
            return np.zeros((0, 0)), np.zeros((0, 0))
        return torch.cat(self._probs).numpy(), torch.cat(self._labels).numpy()
