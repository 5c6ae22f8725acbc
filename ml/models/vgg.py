"""One VGG-style network for both VGG entrypoints (`vgg_small` at 28 px, `cxr_cnn5` at 224 px).

Blocks of two conv-BN-ReLU layers with max-pooling (and optional dropout), a 7x7 adaptive average pool
so any input size works, a fully connected stack and a linear head. It follows the VGG family
(Simonyan & Zisserman, 2015) with batch norm added, and He initialisation throughout.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel, conv_bn_relu, init_kaiming

POOL_SIDE = 7  # the fully connected part always sees WIDTH x 7 x 7


def vgg_block(in_chans: int, out_chans: int, dropout: float = 0.0) -> nn.Sequential:
    """Two conv-BN-ReLU layers, a 2x2 max-pool and optional dropout (VGG's block, with BN).

    Named children (`conv1`, `conv2`, `pool`, `drop`) give Grad-CAM readable dotted paths; `conv2`'s
    output is the last activation before pooling, the usual CAM target.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=conv_bn_relu(in_chans, out_chans),
        conv2=conv_bn_relu(out_chans, out_chans),
        pool=nn.MaxPool2d(2),
    )
    if dropout > 0:
        layers["drop"] = nn.Dropout(dropout)
    return nn.Sequential(layers)


def mlp(in_features: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    """Flatten, then Linear-ReLU-Dropout for each hidden width (the fully connected part before logits)."""
    layers: list[nn.Module] = [nn.Flatten(1)]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_features = width
    return nn.Sequential(*layers)


class VGGNet(ClassifierModel):
    """VGG blocks of `widths` channels, then `hidden` fully connected layers; the last linear is the head.

    `block_dropout` gives one dropout rate per block (0 for none); `fc_dropout` follows each hidden layer.
    The Grad-CAM target is the last block's second conv (`features.<last>.conv2`), before pooling.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        widths: Sequence[int],
        hidden: Sequence[int],
        block_dropout: Sequence[float] | None = None,
        fc_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        chans = (cfg.in_chans, *widths)
        drops = tuple(block_dropout) if block_dropout is not None else (0.0,) * len(widths)
        if len(drops) != len(widths):
            raise ValueError(f"block_dropout needs one rate per block ({len(widths)}); got {len(drops)}")
        pairs = zip(chans[:-1], chans[1:], drops, strict=True)
        self.features = nn.Sequential(*(vgg_block(c_in, c_out, p) for c_in, c_out, p in pairs))
        self.pool = nn.AdaptiveAvgPool2d(POOL_SIDE)
        self.pre_logits = mlp(widths[-1] * POOL_SIDE * POOL_SIDE, hidden, fc_dropout)
        self._hidden = hidden[-1]
        self.classifier = self.build_classifier(cfg.num_classes)
        init_kaiming(self)

    def build_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self._hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pre_logits(self.pool(features)))


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
