"""Where a model runs and in what precision: the device named by a setting, and automatic mixed precision.

Training, evaluation and the benchmarks choose them the same way, from here.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from ml.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on CUDA devices that support it, else fp16; off on CPU. fp16 on CPU is refused."""
    if amp == "off" or (amp == "auto" and device.type == "cpu"):
        return None
    if amp == "fp16" and device.type == "cpu":
        raise ConfigError("amp 'fp16' needs CUDA; on CPU use 'bf16' or 'off'")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if amp == "fp16" else torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
