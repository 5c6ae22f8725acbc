"""ResNet-18 (He et al., 2016): `resnet18` (torchvision's layout) and `resnet18_narrow` (a quarter of the widths).

Both are built here from torchvision's `BasicBlock`, two blocks per stage, with torchvision's module names
(`conv1`, `bn1`, `layer1`..`layer4`), so torchvision's ImageNet file loads into `resnet18` from a local
file; nothing is downloaded. `resnet18_narrow` (widths 16-32-64-128: 0.70M parameters, 2.8 MB in fp32,
against 11.7M for ResNet-18) is meant for training from scratch on a CPU; it has no pretrained weights. The Grad-CAM layer is
`layer4`, the last stage's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.lazy_imports import locked_import
from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel
from ml.models.pretrained import imagenet_config, load_pretrained_backbone

IMAGENET_FILE = "resnet18-f37072fd.pth"  # torchvision's ImageNet weights for resnet18
RESNET18_WIDTHS = (64, 128, 256, 512)


def _basic_block() -> type[nn.Module]:
    """torchvision's `BasicBlock`, imported when a ResNet is built, not when this module is: importing
    torchvision costs about 2.5 s (it loads `torch._dynamo`), which a process using no torchvision model
    (an API serving the small CNNs, a command line) need not pay. Imported one thread at a time
    (`ml.lazy_imports`)."""
    return locked_import("torchvision.models.resnet").BasicBlock


class ResNet(ClassifierModel):
    """Stem (7x7 conv stride 2, BN, ReLU, max-pool), four stages of BasicBlocks, global pool, linear head."""

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        widths: Sequence[int] = RESNET18_WIDTHS,
        blocks: Sequence[int] = (2, 2, 2, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"widths and blocks need four stages; got {list(widths)}, {list(blocks)}")
        self.cfg = cfg
        self.conv1 = nn.Conv2d(cfg.in_chans, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_planes = widths[0]
        stages = []
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stages.append(self._stage(in_planes, width, n, stride=1 if i == 0 else 2))
            in_planes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._width, self._dropout = widths[-1], dropout
        self.classifier = self.build_classifier(cfg.num_classes)
        self._init_weights()

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_planes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        block = _basic_block()
        layers = [block(in_planes, planes, stride, downsample)]
        layers += [block(planes, planes) for _ in range(n - 1)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """As torchvision: He init for convs, BN at identity, the last BN of each block at zero."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        block = _basic_block()
        for m in self.modules():
            if isinstance(m, block):
                nn.init.zeros_(m.bn2.weight)  # each residual block starts as the identity

    def build_classifier(self, num_classes: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Dropout(self._dropout)] if self._dropout > 0 else []
        return nn.Sequential(*layers, nn.Linear(self._width, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(features), 1))


@register_model(
    imagenet_config(
        "resnet18",
        cam_layer="layer4",
        pretrained_file=IMAGENET_FILE,
        description="ResNet-18 (torchvision's layout, widths 64-512); ImageNet weights only from a local file.",
    )
)
def resnet18(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> ResNet:
    """torchvision's ImageNet file maps key for key (its `fc.*` head is dropped)."""
    model = ResNet(cfg, **kwargs)
    if pretrained_path is not None:
        load_pretrained_backbone(model, pretrained_path, first_conv="conv1", drop_prefixes=("fc.",))
    return model


@register_model(
    ModelConfig(
        name="resnet18_narrow",
        input_size=128,
        cam_layer="layer4",
        description="ResNet-18 at a quarter of the width (16-32-64-128, 0.7M parameters), trained from scratch.",
    )
)
def resnet18_narrow(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> ResNet:
    """No pretrained weights exist; `create_model` refuses `pretrained=True` before getting here."""
    return ResNet(cfg, **({"widths": (16, 32, 64, 128)} | kwargs))
