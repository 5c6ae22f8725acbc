"""What a reader sees for one prediction: each label's probability, threshold and decision in words, the
model's test AUROC for it and whether that is high enough to rely on, and warnings in plain words.

Shared by the API (`/predict`, `/gradcam`), the web page (through the API) and `cxr predict`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ml.trust.gate import InputCheck

RELIABLE_AUROC = 0.75  # below it a finding's probability is shown with "unreliable for this finding"


@dataclass(frozen=True)
class Finding:
    label: str
    probability: float
    threshold: float
    decision: str  # "positive" or "negative"
    test_auroc: float | None
    reliable: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_aurocs(metrics: dict[str, Any] | None) -> dict[str, float]:
    """Per-label test AUROC from a checkpoint's (or registry version's) stored evaluation; absent labels and
    undefined values (a label without positives) are left out. The figures of `tools.quality` (`quality`:
    the test set the recipe names, such as Kermany's official test split) come before the training run's own
    test split (`test`), as in GET /models."""
    metrics = metrics or {}
    quality = metrics.get("quality") if isinstance(metrics.get("quality"), dict) else {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    values = quality.get("per_label_auroc") or test.get("auroc") or test.get("per_label_auroc") or {}
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)}


def findings(probabilities: dict[str, float], thresholds: dict[str, float], positive: list[str],
             aurocs: dict[str, float]) -> list[Finding]:
    """One finding per label, in the model's label order."""
    out = []
    for label, p in probabilities.items():
        auc = aurocs.get(label)
        out.append(Finding(label, round(float(p), 6), round(float(thresholds[label]), 6),
                           "positive" if label in positive else "negative",
                           None if auc is None else round(auc, 4), auc is not None and auc >= RELIABLE_AUROC))
    return out


def warnings(items: list[Finding], check: InputCheck | None) -> list[str]:
    """Plain-word warnings: the input gate's flag first, then each finding the model is unreliable for."""
    out = []
    if check is not None and not check.in_distribution:
        out.append("This image may not be a chest X-ray (" + "; ".join(check.reasons) + "): the probabilities "
                   "are not meaningful for it.")
    for f in items:
        if f.test_auroc is None:
            out.append(f"{f.label}: unreliable for this finding (no test AUROC is known for this model).")
        elif not f.reliable:
            out.append(f"{f.label}: unreliable for this finding (test AUROC {f.test_auroc:.2f}, below "
                       f"{RELIABLE_AUROC}).")
    return out


def decision_words(f: Finding) -> str:
    """'positive (0.81 >= threshold 0.42)' or 'negative (0.12 < threshold 0.42)'."""
    sign = ">=" if f.probability >= f.threshold else "<"
    return f"{f.decision} ({f.probability:.3f} {sign} threshold {f.threshold:.3f})"
