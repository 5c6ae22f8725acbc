"""`quality` of a model version in GET /models: test AUROC per label and calibration (ECE, Brier before and after),
read from the evaluation stored with its checkpoint (issue 16 owns the AUROC parts, issue 17 the calibration)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from ml.trust.reading import label_aurocs


class Quality(BaseModel):
    per_label_auroc: dict[str, float] = Field(description="test AUROC per label (labels without one left out)")
    mean_auroc: float | None = None
    test_set: str | None = Field(None, description="the split these figures come from")
    ece_before: float | None = Field(None, description="expected calibration error (15 bins) of the raw outputs")
    ece_after: float | None = Field(None, description="the same for the served, calibrated probabilities")
    brier_before: float | None = None
    brier_after: float | None = None

    @classmethod
    def of(cls, metrics: dict[str, Any] | None) -> Quality:
        test = (metrics or {}).get("test") or {}

        def num(key: str) -> float | None:
            value = test.get(key)
            return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

        return cls(per_label_auroc=label_aurocs(metrics), mean_auroc=num("mean_auroc"),
                   test_set="test" if test else None, ece_before=num("ece_before"), ece_after=num("ece_after"),
                   brier_before=num("brier_before"), brier_after=num("brier_after"))
