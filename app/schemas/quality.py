"""`quality`: what a model version's own test evaluation says, as GET /models shows it beside each model.

One object, filled from the checkpoint's stored evaluation (the registry's `metrics` of the version):
issue 16's AUROC part from `metrics["quality"]` (written by `python -m tools.quality --ship`: the test set
named in the recipe, e.g. Kermany's official test split) or, for a model trained here, from the test split
its training run evaluated (`metrics["test"]`); issue 17's calibration part (`ece_*`, `brier_*`) from
`metrics["quality"]` or `metrics["calibration"]`. Unknown fields are null. It lives apart from
`app.schemas.registry` (which re-exports it) because `app.schemas.serving` needs it and is imported there.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

CALIBRATION_FIELDS = ("ece_before", "ece_after", "brier_before", "brier_after")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class ModelQuality(BaseModel):
    per_label_auroc: dict[str, float | None] = Field(
        default_factory=dict, description="test AUROC per label (null: undefined, e.g. no positives in the test set)",
        examples=[{"Pneumonia": 0.962}])
    mean_auroc: float | None = Field(None, description="mean over the labels where AUROC is defined")
    test_set: str | None = Field(None, description="what the figures were measured on",
                                 examples=["folder: ../shared/data/kermany-pediatric-pneumonia/test_224px"])
    per_label_auroc_ci: dict[str, list[float] | None] | None = Field(
        None, description="95% percentile-bootstrap interval per label, where measured")
    per_dataset_auroc: dict[str, dict[str, float]] | None = Field(
        None, description="models trained on several datasets: test AUROC per dataset and label")
    ece_before: float | None = None
    ece_after: float | None = None
    brier_before: float | None = None
    brier_after: float | None = None

    @classmethod
    def of(cls, metrics: dict[str, Any] | None) -> ModelQuality:
        """From a version's stored metrics; every field null (or empty) when they say nothing."""
        metrics = metrics or {}
        stored = metrics.get("quality") if isinstance(metrics.get("quality"), dict) else None
        calibration = metrics.get("calibration") if isinstance(metrics.get("calibration"), dict) else {}
        fields: dict[str, Any] = {}
        if stored is not None:
            fields = {"per_label_auroc": {str(k): _number(v) for k, v in (stored.get("per_label_auroc") or {}).items()},
                      "mean_auroc": _number(stored.get("mean_auroc")), "test_set": stored.get("test_set"),
                      "per_label_auroc_ci": stored.get("per_label_auroc_ci"),
                      "per_dataset_auroc": stored.get("per_dataset_auroc")}
        elif isinstance(metrics.get("test"), dict):  # a model trained here: its run's own test split
            test = metrics["test"]
            fields = {"per_label_auroc": {str(k): _number(v) for k, v in (test.get("auroc") or {}).items()},
                      "mean_auroc": _number(test.get("mean_auroc")),
                      "test_set": "the test split of its training dataset"}
        for key in CALIBRATION_FIELDS:
            fields[key] = _number((stored or {}).get(key, calibration.get(key)))
        return cls(**fields)
