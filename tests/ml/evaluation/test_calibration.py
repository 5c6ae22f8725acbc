"""Temperature scaling on synthetic over-confident outputs, and folding it into a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data.base import Task
from ml.evaluation.calibration import (
    brier,
    calibration_summary,
    fit_temperatures,
    fold_temperatures,
    reliability,
    scaled,
)
from ml.evaluation.metrics import per_class_auroc
from ml.models import create_model


def _overconfident(n: int, labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities; the 'model' reports logits three times too large."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, labels))
    truth = 1 / (1 + np.exp(-z))
    y = (rng.random((n, labels)) < truth).astype(np.float64)
    reported = 1 / (1 + np.exp(-3 * z))
    return reported, y, truth


def test_temperature_undoes_overconfidence_and_keeps_the_ranking() -> None:
    probs, y, _ = _overconfident(4000, 2)
    y[:50, 1] = np.nan  # unknown labels are ignored
    temps = fit_temperatures(probs, y, Task.MULTILABEL)
    assert np.allclose(temps, 3.0, atol=0.35), temps
    test_probs, test_y, _ = _overconfident(4000, 2, seed=1)
    after = scaled(test_probs, temps, Task.MULTILABEL)
    summary = calibration_summary(test_probs, after, test_y, Task.MULTILABEL)
    assert summary["ece_after"] < summary["ece_before"] / 3 and summary["ece_after"] < 0.03
    assert summary["brier_after"] < summary["brier_before"]
    np.testing.assert_allclose(per_class_auroc(after, test_y), per_class_auroc(test_probs, test_y), atol=1e-5)


def test_multiclass_gets_one_temperature_and_rows_still_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, (3000, 3))
    truth = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    cls = np.array([rng.choice(3, p=p) for p in truth])
    y = np.eye(3)[cls]
    reported = np.exp(4 * z) / np.exp(4 * z).sum(1, keepdims=True)
    temps = fit_temperatures(reported, y, Task.MULTICLASS)
    assert len(set(temps.round(6))) == 1 and 3.0 < temps[0] < 5.5
    after = scaled(reported, temps, Task.MULTICLASS)
    np.testing.assert_allclose(after.sum(1), 1, atol=1e-5)
    assert reliability(after, y, Task.MULTICLASS)["ece"] < reliability(reported, y, Task.MULTICLASS)["ece"]


def test_ece_and_brier_by_hand() -> None:
    probs = np.array([[0.9], [0.9], [0.1], [0.1]])
    y = np.array([[1.0], [0.0], [0.0], [0.0]])
    table = reliability(probs, y, Task.BINARY)
    # bin of 0.9: frequency 0.5 (gap 0.4); bin of 0.1: frequency 0 (gap 0.1); half the pairs each
    assert table["ece"] == pytest.approx(0.25) and sum(table["counts"]) == 4
    assert brier(probs, y, Task.BINARY) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)


def test_a_label_without_both_classes_keeps_temperature_one() -> None:
    probs = np.full((20, 2), 0.7)
    y = np.zeros((20, 2))
    y[:10, 0] = 1
    assert fit_temperatures(probs, y, Task.MULTILABEL)[1] == 1.0


@pytest.mark.parametrize("name", ["simple_cnn", "squeezenet1_1", "vit_tiny"])
def test_folding_divides_the_logits(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    x = torch.randn(2, model.cfg.in_chans, model.cfg.input_size, model.cfg.input_size)
    with torch.no_grad():
        before = model(x)
        fold_temperatures(model, model.head(), [2.0, 0.5, 1.0])
        after = model(x)
    torch.testing.assert_close(after, before / torch.tensor([2.0, 0.5, 1.0]), atol=1e-4, rtol=1e-4)
