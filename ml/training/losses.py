"""Losses for the three task types; unknown labels (NaN) never contribute.

`build_loss` picks BCE-with-logits (optionally with positive-class weights from the training labels),
cross-entropy, or focal loss, and returns a callable `loss(logits, targets)` where `targets` is the
float label matrix of the dataset contract (one-hot rows for multi-class).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ml.data.base import Task
from ml.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def positive_weights(labels: np.ndarray, max_weight: float = 100.0) -> torch.Tensor:
    """negatives / positives per class over known labels, clipped to `max_weight`."""
    known = ~np.isnan(labels)
    pos = np.where(known, labels == 1, False).sum(axis=0).astype(np.float64)
    neg = np.where(known, labels == 0, False).sum(axis=0).astype(np.float64)
    weight = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(weight, 1.0 / max_weight, max_weight), dtype=torch.float32)


def masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean BCE over known labels only."""
    known = ~torch.isnan(targets)
    safe = torch.where(known, targets, torch.zeros_like(targets))
    loss = F.binary_cross_entropy_with_logits(logits.float(), safe, pos_weight=pos_weight, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def masked_focal(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) over known labels: BCE scaled by (1 - p_t) ** gamma."""
    known = ~torch.isnan(targets)
    safe = torch.where(known, targets, torch.zeros_like(targets))
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, safe, pos_weight=pos_weight, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * safe + (1 - p) * (1 - safe)
    loss = bce * (1 - p_t).pow(gamma)
    return (loss * known).sum() / known.sum().clamp(min=1)


def multiclass_focal(logits: torch.Tensor, target_idx: torch.Tensor, gamma: float) -> torch.Tensor:
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, target_idx[:, None])[:, 0]
    return (-(1 - log_p.exp()).pow(gamma) * log_p).mean()


def build_loss(
    kind: str,
    task: Task,
    *,
    train_labels: np.ndarray,
    use_pos_weight: bool = False,
    focal_gamma: float = 2.0,
    label_smoothing: float = 0.0,
    device: torch.device | str = "cpu",
) -> LossFn:
    """The loss for `task`; `kind` is 'bce', 'ce', 'focal' or 'auto'."""
    if kind == "auto":
        kind = "ce" if task is Task.MULTICLASS else "bce"
    pos_weight = positive_weights(train_labels).to(device) if use_pos_weight else None

    if task is Task.MULTICLASS:
        if kind == "ce":
            return lambda logits, y: F.cross_entropy(
                logits.float(), y.argmax(dim=1), label_smoothing=label_smoothing
            )
        if kind == "focal":
            return lambda logits, y: multiclass_focal(logits, y.argmax(dim=1), focal_gamma)
        raise ConfigError(f"loss '{kind}' does not fit a multi-class task; use 'ce' or 'focal'")

    if kind == "ce":
        raise ConfigError(f"loss 'ce' needs a multi-class task; this dataset is {task}: use 'bce' or 'focal'")
    if kind == "focal":
        return lambda logits, y: masked_focal(logits, y, focal_gamma, pos_weight)
    return lambda logits, y: masked_bce(logits, y, pos_weight)
