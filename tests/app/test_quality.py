"""`quality` of a model version, from the metrics stored with it (no server needed)."""

from __future__ import annotations

import math

from app.schemas.quality import ModelQuality
from app.schemas.registry import ModelQuality as ReExported

CALIBRATION = ("ece_before", "ece_after", "brier_before", "brier_after")


def test_a_stored_evaluation_wins_over_the_run_s_own_test_split() -> None:
    metrics = {"test": {"auroc": {"Pneumonia": 0.99}, "mean_auroc": 0.99},
               "quality": {"test_set": "folder: kermany test_224px", "per_label_auroc": {"Pneumonia": 0.95},
                           "mean_auroc": 0.95, "per_label_auroc_ci": {"Pneumonia": [0.93, 0.97]},
                           "ece_after": 0.03}}
    q = ModelQuality.of(metrics)
    assert q.per_label_auroc == {"Pneumonia": 0.95} and q.mean_auroc == 0.95
    assert q.test_set == "folder: kermany test_224px" and q.per_label_auroc_ci == {"Pneumonia": [0.93, 0.97]}
    assert q.ece_after == 0.03 and q.ece_before is None and q.brier_after is None


def test_a_run_s_test_split_is_used_when_nothing_else_is_stored_and_undefined_aurocs_stay_null() -> None:
    q = ModelQuality.of({"test": {"auroc": {"A": 0.7, "Hernia": None, "B": math.nan}, "mean_auroc": 0.7},
                         "calibration": {"ece_before": 0.1, "brier_before": 0.2}})
    assert q.per_label_auroc == {"A": 0.7, "Hernia": None, "B": None}
    assert q.test_set == "the test split of its training dataset"
    assert (q.ece_before, q.brier_before, q.ece_after) == (0.1, 0.2, None)


def test_nothing_stored_gives_every_field_null() -> None:
    body = ModelQuality.of({}).model_dump()
    assert body["per_label_auroc"] == {} and body["mean_auroc"] is None and body["test_set"] is None
    assert all(body[k] is None for k in CALIBRATION)
    assert ReExported is ModelQuality
