"""`simple_cnn`: a small CNN for 28x28 MedMNIST-style images that trains in minutes on a CPU (the other
small one, the VGG-style `vgg_small`, lives with its family in `ml.models.vgg`).

It also accepts other input sizes: adaptive pooling fixes the size the fully connected part sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel, conv_bn_relu, init_kaiming


class SimpleCNN(ClassifierModel):
    """Three conv-BN-ReLU layers (32-64-128) with max-pooling, global average pooling and a linear head.

    About 95k parameters: small enough for a few CPU minutes per run on PneumoniaMNIST, wide enough at
    the last layer (128 channels over 7x7 at 28 px) not to underfit it.
    """

    def __init__(
        self, cfg: ModelConfig, *, widths: Sequence[int] = (32, 64, 128), dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.cfg = cfg
        if len(widths) < 2:
            raise ValueError(f"widths needs at least two layers; got {list(widths)}")
        # conv, pool, conv, pool, ..., conv: one more layer (and a halving) per extra width, for larger
        # inputs. The default three widths give the layout (and the CAM layer 'features.4') of old.
        layers: list[nn.Module] = [conv_bn_relu(cfg.in_chans, widths[0])]
        for c_in, c_out in pairwise(widths):
            layers += [nn.MaxPool2d(2), conv_bn_relu(c_in, c_out)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._width = widths[-1]
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
        name="simple_cnn",
        input_size=28,
        cam_layer="features.4",
        description="Three-layer CNN (32/64/128 channels) with global pooling; trains in minutes on a CPU.",
    )
)
def simple_cnn(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> SimpleCNN:
    """No pretrained weights exist; `create_model` refuses `pretrained=True` before getting here.

    `widths` of any length >= 2 (default three); the CAM layer is the last conv block either way.
    """
    depth = len(kwargs.get("widths", (32, 64, 128)))
    return SimpleCNN(cfg.replace(cam_layer=f"features.{2 * depth - 2}"), **kwargs)
