"""What a reader needs beside the probabilities (issue 17): the input gate's verdict, each finding in words with
the model's test AUROC for it, warnings, the resolution the model sees and whether probabilities are
calibrated. Built by `ml.trust.reading` from the served version's stored evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ml.trust import InputCheck
from ml.trust.reading import findings, label_aurocs, warnings

if TYPE_CHECKING:
    from app.serving.served import ServedModel
    from ml.inference import Prediction


class InputCheckInfo(BaseModel):
    in_distribution: bool = Field(description="false: the input gate flags the image as not a chest X-ray")
    score: float = Field(description="the gate's probability that this is an upright, non-inverted chest X-ray",
                         examples=[0.97])
    threshold: float = Field(description="scores under it are flagged (chosen on validation X-rays)",
                             examples=[0.4])
    reasons: list[str] = Field(description="why it is flagged, in words; empty when it is not",
                               examples=[["colour image (38% of pixels coloured): a radiograph is grey"]])


class FindingInfo(BaseModel):
    label: str = Field(examples=["Effusion"])
    probability: float = Field(examples=[0.642])
    threshold: float = Field(examples=[0.42])
    decision: str = Field(description="positive or negative: the probability against the threshold (multiclass: "
                                      "the most probable class)", examples=["positive"])
    test_auroc: float | None = Field(description="the model's AUROC for this label on its test split; null if "
                                                 "unknown", examples=[0.91])
    reliable: bool = Field(description="test_auroc >= 0.75 (false when unknown)")


class Reading(BaseModel):
    input_check: InputCheckInfo
    input_size: list[int] = Field(description="[height, width] the model actually sees", examples=[[224, 224]])
    calibrated: bool = Field(description="probabilities are calibrated (temperature or Platt scaling fitted on "
                                         "validation data)")
    test_time_views: str = Field(description="what the probabilities average: 'none' (the image alone), 'hflip' "
                                 "(the image and its mirror) or 'crops' (the image and five crops of 90% of its "
                                 "side), as the model was calibrated and evaluated", examples=["none"])
    findings: list[FindingInfo] = Field(description="one per label, in the model's order")
    warnings: list[str] = Field(description="the input gate's flag and findings the model is unreliable for",
                                examples=[["Cardiomegaly: unreliable for this finding (test AUROC 0.61, below 0.75)."]])


def reading(served: ServedModel, prediction: Prediction, check: InputCheck | None) -> dict[str, Any]:
    """The `Reading` fields of one result."""
    items = findings(prediction.probabilities, prediction.thresholds, prediction.positive,
                     label_aurocs(served.record.metrics))
    size = served.loaded.data_config.input_size
    return {
        "input_check": check.as_dict() if check else {"in_distribution": True, "score": 1.0, "threshold": 0.0,
                                                      "reasons": []},
        "input_size": [size, size],
        "calibrated": served.loaded.calibrated,
        "test_time_views": served.loaded.tta,
        "findings": [f.as_dict() for f in items],
        "warnings": warnings(items, check),
    }
