"""Tests for `tools.decision_rule`: stratified halves, and cross-validation that tells a real prior shift from
weights fitted to noise."""

from __future__ import annotations

import numpy as np
import pytest

from tools import decision_rule


def _rows(n: int, shrink: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    p = np.exp(rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[truth])
    p[:, 2] *= shrink
    return p / p.sum(axis=1, keepdims=True), np.eye(3)[truth]


def test_halves_split_every_class_evenly_and_cover_every_row_once() -> None:
    truth = np.array([0] * 11 + [1] * 20 + [2] * 7)
    a, b = decision_rule.stratified_halves(truth, np.random.default_rng(0))
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(len(truth)))
    for c in range(3):
        assert abs(int((truth[a] == c).sum()) - int((truth[b] == c).sum())) <= 1


def test_a_real_shift_gains_on_held_out_halves() -> None:
    probs, labels = _rows(300, shrink=0.25, seed=0)
    out = decision_rule.cross_validate(probs, labels, repeats=5, seed=0)
    assert out["halves"] == 10 and out["gain_mean"] > 0.03 and out["gain_positive_share"] >= 0.8
    assert out["weights_all_val"][2] > 2


def test_without_a_shift_the_held_out_gain_is_not_what_the_same_rows_show() -> None:
    probs, labels = _rows(120, shrink=1.0, seed=3)
    out = decision_rule.cross_validate(probs, labels, repeats=10, seed=0)
    in_sample = out["all_val_fitted"] - out["all_val_argmax"]
    assert in_sample > 0 and out["gain_mean"] < in_sample  # fitted on the rows it is scored on, it flatters itself


def test_a_model_that_is_not_multi_class_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        decision_rule.main(["--model", "nih14"])
    assert "decision weights are for multi-class models" in capsys.readouterr().err
