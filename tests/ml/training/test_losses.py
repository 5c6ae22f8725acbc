import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.data.base import Task
from ml.errors import ConfigError
from ml.training.losses import build_loss, masked_bce, masked_focal, positive_weights


def test_unknown_labels_do_not_contribute():
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    a = masked_bce(torch.tensor([[0.3, 5.0], [0.1, -0.2]]), targets)
    b = masked_bce(torch.tensor([[0.3, -9.0], [0.1, -0.2]]), targets)
    assert torch.isclose(a, b)
    expected = F.binary_cross_entropy_with_logits(torch.tensor([0.3, 0.1, -0.2]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isclose(a, expected)


def test_positive_weights_are_negatives_over_positives():
    labels = np.array([[1, 0], [0, 0], [0, 1], [0, np.nan]], dtype=np.float32)
    w = positive_weights(labels)
    assert w.tolist() == pytest.approx([3.0, 2.0])


def test_focal_with_gamma_zero_is_bce_and_down_weights_easy_examples():
    logits = torch.tensor([[4.0], [-0.1]])
    targets = torch.tensor([[1.0], [1.0]])
    assert torch.isclose(masked_focal(logits, targets, 0.0), masked_bce(logits, targets))
    assert masked_focal(logits, targets, 2.0) < masked_bce(logits, targets)


def test_build_loss_for_each_task():
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    ce = build_loss("auto", Task.MULTICLASS, train_labels=y)
    logits = torch.randn(4, 3)
    assert torch.isclose(ce(logits, torch.from_numpy(y)), F.cross_entropy(logits, torch.tensor([0, 1, 2, 1])))
    with pytest.raises(ConfigError, match="multi-class"):
        build_loss("ce", Task.BINARY, train_labels=y[:, :1])
    with pytest.raises(ConfigError, match="ce"):
        build_loss("bce", Task.MULTICLASS, train_labels=y)
    weighted = build_loss("bce", Task.MULTILABEL, train_labels=y, use_pos_weight=True)
    assert weighted(torch.zeros(4, 3), torch.from_numpy(y)).item() > 0
