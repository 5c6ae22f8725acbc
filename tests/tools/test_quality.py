"""Tests for `tools.quality`: the figures (bootstrap intervals, undefined AUROCs), data paths, and what
ships with every model (recipe, card, small weights)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from ml.config import TrainConfig
from ml.data.base import Task
from tools import quality


def _prediction(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = 120
    labels = np.zeros((n, 3), dtype=np.float32)
    labels[:40, 0] = 1  # plenty of positives
    labels[:2, 1] = 1  # two positives: unreliable
    probs = np.clip(labels * 0.4 + rng.random((n, 3)) * 0.6, 0, 1).astype(np.float32)  # label 2: no positives
    return {"probs": probs, "labels": labels, "thresholds": np.full(3, 0.5), "task": Task.MULTILABEL,
            "pathologies": ["A", "B", "C"]}


def test_figures_give_intervals_and_flag_undefined_or_unreliable_aurocs() -> None:
    out = quality.figures(_prediction(), n_resamples=200)
    a, b, c = (out["per_class"][k] for k in "ABC")
    lo, hi = a["auroc_ci"]
    assert lo < a["auroc"] < hi and hi - lo < 0.3 and a["auroc_note"] == ""
    assert b["auroc_note"] == "unreliable: only 2 positives" and b["support"] == 2 and b["auroc_ci"] is None
    assert c["auroc"] is None and c["auroc_ci"] is None and c["auroc_note"].startswith("undefined")
    assert out["mean_auroc"] == pytest.approx((a["auroc"] + b["auroc"]) / 2)
    assert out["bootstrap"] == {"resamples": 200, "seed": 0, "confidence": 0.95, "method": "percentile"}
    assert quality.figures(_prediction(), n_resamples=200) == out  # fixed seed: the same intervals


def test_recipe_paths_into_shared_data_follow_the_data_option(tmp_path: Path) -> None:
    assert quality.resolve_data_root("../shared/data/x/y", tmp_path) == tmp_path / "x" / "y"
    assert quality.resolve_data_root("data/p.npz", tmp_path) == quality.REPO_ROOT / "data" / "p.npz"
    assert quality.resolve_data_root("../shared/data/x", tmp_path, "/else") == Path("/else")


SHIPPED = quality.shipped_models()


def test_the_first_shipped_model_is_the_default_one() -> None:
    assert next(iter(SHIPPED)) == "pneumonia" and len(SHIPPED) >= 4


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_model_has_its_recipe_card_and_small_weights(name: str) -> None:
    entry = SHIPPED[name]
    raw = tomllib.loads((quality.REPO_ROOT / entry["recipe"]).read_text())
    raw.pop("description")
    assert TrainConfig.parse(raw).params.seed == 0
    weights = quality.REPO_ROOT / "models" / entry["path"]
    assert weights.stat().st_size < 5_000_000
    card = (weights.parent / "CARD.md").read_text()
    assert "Not for clinical use" in card and f"python -m tools.quality --model {name}" in card
    assert entry["recipe"] in card and "95% CI" in card


def test_it_measures_a_shipped_model_end_to_end(capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("bench.common.RESULTS", tmp_path)
    assert quality.main(["--model", "nih14", "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "test n=177" in out and "Hernia" in out and "undefined: no positives" in out
    assert (tmp_path / "quality-nih14.json").exists()
