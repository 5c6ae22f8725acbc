"""The models the benchmarks measure: every shipped model (from models/manifest.toml) and DenseNet-121 at
224 px (the reference heavy model of the performance targets; random weights, speed does not depend on
them)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bench.common import REPO_ROOT
from ml.evaluation.metrics import probabilities
from ml.inference import LoadedModel
from ml.models import create_model
from ml.training.checkpoint import build_checkpoint
from ml.transforms import resolve_data_config


@dataclass
class BenchModel:
    label: str
    loaded: LoadedModel

    @property
    def to_probabilities(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda logits: probabilities(logits, self.loaded.task)


def densenet121_224() -> LoadedModel:
    torch.manual_seed(0)
    model = create_model("densenet121", num_classes=14)
    ckpt = build_checkpoint(model, model_kwargs={}, labels=[f"label{i}" for i in range(14)], task="multilabel",
                            data_config=resolve_data_config(model.cfg))
    return LoadedModel.from_checkpoint(ckpt)


def bench_models(include_densenet: bool = True) -> list[BenchModel]:
    manifest = tomllib.loads((REPO_ROOT / "models" / "manifest.toml").read_text())
    out = []
    for entry in manifest["model"]:
        loaded = LoadedModel.from_checkpoint(REPO_ROOT / "models" / entry["path"])
        out.append(BenchModel(f"{entry['name']} ({loaded.meta['model_name']})", loaded))
    if include_densenet:
        out.append(BenchModel("densenet121 @224 (random)", densenet121_224()))
    return out
