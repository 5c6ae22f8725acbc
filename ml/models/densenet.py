"""DenseNet-121 for chest X-rays: `densenet121` (CheXNet) and `densenet121_gem` (GeM-pooled, CheXpert).

The backbone is torchvision's `densenet121(weights=None).features`; ImageNet weights come only from a
local file. Our own forward applies the final ReLU out of place: torchvision's `DenseNet.forward` uses
`F.relu(..., inplace=True)` on `features.norm5`'s output, which would overwrite the activation that
Grad-CAM saved from that layer. (CheXNet: Rajpurkar et al., 2017; GeM: Radenovic et al., 2018.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ml.lazy_imports import locked_import
from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel, GeM, with_in_chans
from ml.models.pretrained import imagenet_config, load_pretrained_backbone

IMAGENET_FILE = "densenet121-a639ec97.pth"  # torchvision's ImageNet weights
CAM_LAYER = "features.norm5"  # the last feature map, before our out-of-place ReLU
# Old torchvision checkpoints (the ImageNet file included) name dense-layer modules `norm.1`, `conv.2`...
_LEGACY_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def remap_legacy_key(key: str) -> str:
    """`...denselayer1.norm.1.weight` -> `...denselayer1.norm1.weight` (torchvision's own legacy fix)."""
    return _LEGACY_KEY.sub(r"\1\2.", key)


class DenseNet121(ClassifierModel):
    """DenseNet-121 features, an out-of-place ReLU, then a pooling head: average or GeM."""

    NUM_FEATURES = 1024

    def __init__(
        self, cfg: ModelConfig, *, pool: str = "avg", drop_rate: float = 0.0, memory_efficient: bool = False
    ) -> None:
        super().__init__()
        if pool not in ("avg", "gem"):
            raise ValueError(f"pool must be 'avg' or 'gem'; got '{pool}'")
        self.cfg = cfg
        self._pool, self._drop_rate = pool, drop_rate
        torchvision = locked_import("torchvision")  # here, not at import: see `ml.models.resnet._basic_block`

        backbone = torchvision.models.densenet121(weights=None, memory_efficient=memory_efficient)
        self.features = backbone.features
        self.features.conv0 = with_in_chans(self.features.conv0, cfg.in_chans)
        self.classifier = self.build_classifier(cfg.num_classes)

    def build_classifier(self, num_classes: int) -> nn.Module:
        """Pool, flatten, (dropout,) linear; GeM's exponent is part of the head, learned with it."""
        pool = GeM(p=3.0, eps=1e-6) if self._pool == "gem" else nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = [pool, nn.Flatten(1)]
        if self._drop_rate > 0:
            layers.append(nn.Dropout(self._drop_rate))
        linear = nn.Linear(self.NUM_FEATURES, num_classes)
        nn.init.zeros_(linear.bias)
        return nn.Sequential(*layers, linear)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))  # out of place: Grad-CAM keeps norm5's output

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


def _build(cfg: ModelConfig, pretrained_path: Path | None, **kwargs: Any) -> DenseNet121:
    model = DenseNet121(cfg, **kwargs)
    if pretrained_path is not None:
        load_pretrained_backbone(model, pretrained_path, first_conv="features.conv0", remap=remap_legacy_key)
    return model


@register_model(
    imagenet_config(
        "densenet121",
        cam_layer=CAM_LAYER,
        pretrained_file=IMAGENET_FILE,
        description="CheXNet-style DenseNet-121: ImageNet backbone, global average pool, linear head.",
    )
)
def densenet121(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> DenseNet121:
    """`memory_efficient=True` trades compute for memory (checkpointed dense layers)."""
    return _build(cfg, pretrained_path, **kwargs)


@register_model(
    imagenet_config(
        "densenet121_gem",
        cam_layer=CAM_LAYER,
        pretrained_file=IMAGENET_FILE,
        description="DenseNet-121 with a GeM pooling neck (learnable p), dropout 0.2 and a linear head.",
    )
)
def densenet121_gem(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> DenseNet121:
    """As `densenet121`, pooled with GeM (p starts at 3) and dropout 0.2 before the linear head."""
    return _build(cfg, pretrained_path, **({"pool": "gem", "drop_rate": 0.2} | kwargs))
