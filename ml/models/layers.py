"""Building blocks shared by the model zoo, written once here.

`ClassifierModel` gives every model the same `head()` / `reset_classifier()` pair: a model keeps its
head in `self.classifier` and says how to build one in `build_classifier`. The rest are the small
layers several models use (conv-BN-ReLU, GeM pooling, He initialisation, the first-conv swap for
1-channel input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ml.models.base import CXRModel


class ClassifierModel(CXRModel):
    """A `CXRModel` whose head is `self.classifier`, rebuilt by `build_classifier(num_classes)`."""

    classifier: nn.Module

    def build_classifier(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def head(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh one for `num_classes` outputs, on the old head's device."""
        old = next(self.classifier.parameters(), None)
        new = self.build_classifier(num_classes)
        self.classifier = new.to(old.device, old.dtype) if old is not None else new
        self.cfg = self.cfg.replace(num_classes=num_classes)


def conv_bn_relu(in_chans: int, out_chans: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias: BN follows) + BatchNorm + ReLU, padding that keeps the spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    )


def init_kaiming(module: nn.Module) -> None:
    """He initialisation for conv and linear weights, BN at identity, zero biases (for ReLU networks)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in",
                                    nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def with_in_chans(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """`conv` itself, or a fresh conv with the same settings that takes `in_chans` channels."""
    if conv.in_channels == in_chans:
        return conv
    return nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=conv.bias is not None,
    )


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent p (p=1: average, large p: towards max).

    Follows Radenovic et al., "Fine-tuning CNN Image Retrieval with No Human Annotation" (TPAMI 2018).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1)
        return pooled.pow(1.0 / self.p)
