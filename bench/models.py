"""The models the benchmarks measure: every shipped model (from models/manifest.toml) and DenseNet-121 at
224 px (the reference heavy model of the performance targets; random weights, speed does not depend on
them). Each is built when a benchmark first asks for it, so `--model` skips building the others."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch

from bench.common import REPO_ROOT
from ml.checkpoint import build_checkpoint, load_checkpoint
from ml.evaluation.metrics import probabilities
from ml.inference import LoadedModel
from ml.models import create_model
from ml.transforms import resolve_data_config


@dataclass
class BenchModel:
    label: str
    build: Callable[[], LoadedModel] = field(repr=False)

    @cached_property
    def loaded(self) -> LoadedModel:
        return self.build()

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
        # a small file, read for the architecture's name in the label; the model is built when asked for
        ckpt = load_checkpoint(REPO_ROOT / "models" / entry["path"])
        out.append(BenchModel(f"{entry['name']} ({ckpt['model_name']})",
                              lambda ckpt=ckpt: LoadedModel.from_checkpoint(ckpt)))
    if include_densenet:
        out.append(BenchModel("densenet121 @224 (random)", densenet121_224))
    return out
