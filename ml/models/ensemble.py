"""`ensemble`: several models of one architecture whose logits are averaged (a deep ensemble).

Members are normally trained apart, with different seeds, and joined afterwards by `cxr ensemble`
(`ml.ensemble.join_checkpoints`), which loads each member's weights into `members.<i>`. The average is a
fixed linear layer (`combine`: weights 1/k on each member's logit of the same label, bias 0), so the
ensemble has a head like any model here: calibration folds its temperatures into it, and Grad-CAM's target,
the averaged logit, is a sum over the members. Its Grad-CAM layers are every member's own CAM layer; the
maps are averaged across them as pytorch-grad-cam does for several target layers.

Trained directly (`cxr train --model ensemble`), the members learn jointly through the averaged logits,
and `combine` is the head trained like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.errors import ModelError
from ml.models import small  # noqa: F401  (registers the default member first)
from ml.models.base import CXRModel, ModelConfig
from ml.models.factory import create_model, get_model_config, register_model

MAX_MEMBERS = 8


def averaging_layer(num_classes: int, count: int) -> nn.Linear:
    """A Linear from `count` members' concatenated logits to their per-label mean."""
    layer = nn.Linear(count * num_classes, num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(num_classes).repeat(1, count) / count)
        layer.bias.zero_()
    return layer


class Ensemble(CXRModel):
    def __init__(self, cfg: ModelConfig, *, member: str = "simple_cnn", count: int = 2,
                 member_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if member == "ensemble":
            raise ValueError("an ensemble's members cannot be ensembles")
        if not 2 <= count <= MAX_MEMBERS:
            raise ValueError(f"count must be 2 to {MAX_MEMBERS}; got {count}")
        kwargs = dict(member_kwargs or {})
        self.members = nn.ModuleList(
            create_model(member, num_classes=cfg.num_classes, in_chans=cfg.in_chans, **kwargs) for _ in range(count)
        )
        first = self.members[0].cfg
        self.cfg = cfg.replace(input_size=first.input_size, normalization=first.normalization,
                               cam_layer=f"members.0.{first.cam_layer}", cam_reshape=first.cam_reshape)
        self.combine = averaging_layer(cfg.num_classes, count)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The members' logits side by side, (B, count * num_classes)."""
        return torch.cat([m(x) for m in self.members], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.combine(features)

    def head(self) -> nn.Module:
        return self.combine

    def reset_classifier(self, num_classes: int) -> None:
        for m in self.members:
            m.reset_classifier(num_classes)
        old = self.combine.weight
        self.combine = averaging_layer(num_classes, len(self.members)).to(old.device, old.dtype)
        self.cfg = self.cfg.replace(num_classes=num_classes)

    def cam_layer_names(self) -> list[str]:
        return [f"members.{i}.{name}" for i, m in enumerate(self.members) for name in m.cam_layer_names()]


@register_model(
    ModelConfig(
        name="ensemble",
        input_size=get_model_config("simple_cnn").input_size,
        cam_layer=f"members.0.{get_model_config('simple_cnn').cam_layer}",  # the default member's
        description="A deep ensemble: `count` models of the architecture `member` (options `member_kwargs`), "
                    "logits averaged; joined from separately trained checkpoints by `cxr ensemble`.",
    )
)
def ensemble(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> Ensemble:
    if pretrained_path is not None:
        raise ModelError("an ensemble has no pretrained weights of its own: join trained members with "
                         "`cxr ensemble`")
    return Ensemble(cfg, **kwargs)
