"""A trained model ready to answer: weights, labels, thresholds and the preprocessing it was trained with.

Used by the CLI and by the API's predictor, so serving preprocesses exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.checkpoint import checkpoint_epoch, load_checkpoint, model_from_checkpoint
from ml.config import DataConfig, TTAMode
from ml.data.base import Task
from ml.evaluation.metrics import probabilities
from ml.models import CXRModel
from ml.transforms import Preprocess
from ml.tta import averaged_logits, checkpoint_tta


@dataclass
class Prediction:
    probabilities: dict[str, float]
    thresholds: dict[str, float]
    positive: list[str]  # labels at or above their threshold (multi-class: the arg-max class)


@dataclass
class LoadedModel:
    model: CXRModel
    labels: list[str]
    task: Task
    thresholds: np.ndarray
    preprocess: Preprocess
    meta: dict[str, Any] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    tta: TTAMode = "none"  # the views each answer averages (ml.tta)

    @classmethod
    def from_checkpoint(cls, source: str | Path | bytes | dict[str, Any], device: str = "cpu") -> LoadedModel:
        ckpt = source if isinstance(source, dict) else load_checkpoint(source)
        model = model_from_checkpoint(ckpt).to(device)
        labels = list(ckpt["labels"])
        thresholds = ckpt.get("thresholds") or [0.5] * len(labels)
        meta = {k: ckpt.get(k) for k in ("model_name", "model_kwargs", "metrics", "train_config", "calibration")}
        meta["epoch"] = checkpoint_epoch(ckpt)  # counting from 1, whenever the checkpoint was written
        return cls(
            model=model,
            labels=labels,
            task=Task(ckpt["task"]),
            thresholds=np.asarray(thresholds, dtype=np.float64),
            preprocess=Preprocess(DataConfig.model_validate(ckpt["data_config"])),
            meta=meta,
            device=torch.device(device),
            tta=checkpoint_tta(ckpt),
        )

    @property
    def calibrated(self) -> bool:
        """Whether the probabilities are temperature-scaled (the checkpoint carries temperatures)."""
        return bool((self.meta.get("calibration") or {}).get("temperatures"))

    @property
    def data_config(self) -> DataConfig:
        return self.preprocess.cfg

    @torch.inference_mode()
    def predict_tensor(self, batch: torch.Tensor) -> np.ndarray:
        """Probabilities (B, L) for a preprocessed (B, C, S, S) batch."""
        logits = averaged_logits(self.model, batch.to(self.device), self.tta)
        return probabilities(logits, self.task).cpu().numpy()

    def predict_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Probabilities (B, L) for HxW float images in [0, 1]."""
        return self.predict_tensor(self.preprocess.batch(images))

    def explain_probabilities(self, probs: np.ndarray) -> Prediction:
        """Turn one row of probabilities into labelled output with the decisions."""
        if self.task is Task.MULTICLASS:
            positive = [self.labels[int(np.argmax(probs))]]
        else:
            positive = [lab for lab, p, t in zip(self.labels, probs, self.thresholds, strict=True) if p >= t]
        return Prediction(
            probabilities={lab: float(p) for lab, p in zip(self.labels, probs, strict=True)},
            thresholds={lab: float(t) for lab, t in zip(self.labels, self.thresholds, strict=True)},
            positive=positive,
        )
