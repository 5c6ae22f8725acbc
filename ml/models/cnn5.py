"""`cxr_cnn5`: a five-block VGG-style CNN trained from scratch on 224x224 radiographs.

Blocks of 64-128-256-512-512 channels, each two conv-BN-ReLU layers, max-pooling and dropout (0.25 in
the first three blocks, 0.30 in the last two), then a 7x7 adaptive average pool and the fully connected
stack 25088-4096-2048-num_classes with dropout; He initialisation. Made for Normal/Pneumonia/Tuberculosis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.vgg import VGGNet


@register_model(
    ModelConfig(
        name="cxr_cnn5",
        input_size=224,
        num_classes=3,
        cam_layer="features.4.conv2",
        description="Five-block VGG-style CNN (64-512 channels, FC 4096-2048) for Normal/Pneumonia/TB.",
    )
)
def cxr_cnn5(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> VGGNet:
    """No pretrained weights exist; `create_model` refuses `pretrained=True` before getting here."""
    options: dict[str, Any] = {
        "widths": (64, 128, 256, 512, 512),
        "block_dropout": (0.25, 0.25, 0.25, 0.30, 0.30),
        "hidden": (4096, 2048),
        "fc_dropout": 0.5,
    }
    return VGGNet(cfg, **(options | kwargs))
