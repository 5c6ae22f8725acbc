"""`squeezenet1_1`: transfer learning on torchvision's SqueezeNet 1.1 features (Iandola et al., 2016).

The ImageNet backbone is frozen by default (`freeze_backbone=False` trains it too) and a new classifier
replaces the original: dropout, a 1x1 conv to one channel per class and a global average pool. The
original's ReLU before pooling is left out on purpose: the outputs are logits and must be able to go
negative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.lazy_imports import locked_import
from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel, with_in_chans
from ml.models.pretrained import imagenet_config, load_pretrained_backbone


class SqueezeNet(ClassifierModel):
    """SqueezeNet 1.1 features (512 channels, 13x13 at 224 px) and a conv classifier."""

    NUM_FEATURES = 512

    def __init__(self, cfg: ModelConfig, *, dropout: float = 0.5) -> None:
        super().__init__()
        self.cfg = cfg
        self._dropout = dropout
        torchvision = locked_import("torchvision")  # here, not at import: see `ml.models.resnet._basic_block`

        self.features = torchvision.models.squeezenet1_1(weights=None).features
        self.features[0] = with_in_chans(self.features[0], cfg.in_chans)
        self.classifier = self.build_classifier(cfg.num_classes)

    def build_classifier(self, num_classes: int) -> nn.Module:
        conv = nn.Conv2d(self.NUM_FEATURES, num_classes, kernel_size=1)
        nn.init.normal_(conv.weight, std=0.01)  # as torchvision initialises its final conv
        nn.init.zeros_(conv.bias)
        return nn.Sequential(nn.Dropout(self._dropout), conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


@register_model(
    imagenet_config(
        "squeezenet1_1",
        cam_layer="features.12",  # the last Fire module's output
        pretrained_file="squeezenet1_1-b8a52dc0.pth",
        description="SqueezeNet 1.1 transfer learning: frozen ImageNet features, new conv classifier.",
    )
)
def squeezenet1_1(
    cfg: ModelConfig, *, pretrained_path: Path | None = None, freeze_backbone: bool = True, **kwargs: Any
) -> SqueezeNet:
    """`freeze_backbone=True` (default) trains only the new classifier."""
    model = SqueezeNet(cfg, **kwargs)
    if pretrained_path is not None:
        load_pretrained_backbone(model, pretrained_path, first_conv="features.0")
    model.freeze_backbone(freeze_backbone)
    return model
