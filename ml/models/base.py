"""What every model offers: a frozen config and one small interface.

Training, fine-tuning, Grad-CAM and export use only `CXRModel`'s methods, so none of them needs a
per-model branch. (The pretrained-config idea follows timm's `pretrained_cfg`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

NORMALIZATIONS = ("minus_one_one", "imagenet", "dataset")


@dataclass(frozen=True)
class ModelConfig:
    """Static facts about a model entrypoint; instances carry their own copy with real values."""

    name: str
    input_size: int  # square side in pixels the model was designed for
    in_chans: int = 1
    num_classes: int = 14
    normalization: str = "minus_one_one"  # one of NORMALIZATIONS
    cam_layer: str = ""  # dotted path of the Grad-CAM target module
    cam_reshape: str | None = None  # "vit_tokens": (B, 1+N, D) tokens to a (B, D, h, w) map
    pretrained_file: str | None = None  # file name torchvision uses in torch's hub cache
    description: str = ""

    def replace(self, **changes: object) -> ModelConfig:
        return dataclasses.replace(self, **changes)


class CXRModel(nn.Module):
    """Base class: a backbone producing features and a head producing one logit per class."""

    cfg: ModelConfig

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def head(self) -> nn.Module:
        """The module(s) replaced by `reset_classifier`; trained during a frozen warm-up."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head().parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        head_ids = {id(p) for p in self.head_parameters()}
        return (p for p in self.parameters() if id(p) not in head_ids)

    def freeze_backbone(self, frozen: bool = True) -> None:
        for p in self.backbone_parameters():
            p.requires_grad_(not frozen)

    def cam_target_layer(self) -> nn.Module:
        return self.get_submodule(self.cfg.cam_layer)

    def cam_layer_names(self) -> list[str]:
        """Dotted paths of the Grad-CAM target modules: the configured one, or one per member of an
        ensemble (whose maps are averaged)."""
        return [self.cfg.cam_layer]

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.get_submodule(name) for name in self.cam_layer_names()]
