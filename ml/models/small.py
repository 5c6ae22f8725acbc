"""Small CNNs for 28x28 MedMNIST-style images that train in minutes on a CPU.

Both also accept other input sizes: adaptive pooling fixes the size the fully connected part sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.models import register_model
from ml.models.base import ModelConfig
from ml.models.layers import ClassifierModel, conv_bn_relu, init_kaiming
from ml.models.vgg import VGGNet


class SimpleCNN(ClassifierModel):
    """Three conv-BN-ReLU layers (32-64-128) with max-pooling, global average pooling and a linear head.

    About 95k parameters: small enough for a few CPU minutes per run on PneumoniaMNIST, wide enough at
    the last layer (128 channels over 7x7 at 28 px) not to underfit it.
    """

    def __init__(
        self, cfg: ModelConfig, *, widths: tuple[int, int, int] = (32, 64, 128), dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            conv_bn_relu(cfg.in_chans, c1),
            nn.MaxPool2d(2),
            conv_bn_relu(c1, c2),
            nn.MaxPool2d(2),
            conv_bn_relu(c2, c3),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._width = c3
        self._dropout = dropout
        self.classifier = self.build_classifier(cfg.num_classes)
        init_kaiming(self)

    def build_classifier(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Dropout(self._dropout), nn.Linear(self._width, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(features), 1))


@register_model(
    ModelConfig(
        name="vgg_small",
        input_size=28,
        cam_layer="features.1.conv2",
        description="VGG-style CNN for 28x28 images (two conv blocks, 32/64 channels, FC 256).",
    )
)
def vgg_small(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> VGGNet:
    """No pretrained weights exist; `create_model` refuses `pretrained=True` before getting here."""
    options: dict[str, Any] = {"widths": (32, 64), "hidden": (256,), "fc_dropout": 0.5}
    return VGGNet(cfg, **(options | kwargs))


@register_model(
    ModelConfig(
        name="simple_cnn",
        input_size=28,
        cam_layer="features.4",
        description="Three-layer CNN (32/64/128 channels) with global pooling; trains in minutes on a CPU.",
    )
)
def simple_cnn(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> SimpleCNN:
    """No pretrained weights exist; `create_model` refuses `pretrained=True` before getting here."""
    return SimpleCNN(cfg, **kwargs)
