"""Test-time augmentation: a model's logits averaged over several views of each preprocessed image.

Modes:
- `none`: the image alone.
- `hflip`: the image and its mirror. Chest radiographs are not left-right symmetric (the heart, the aortic
  arch), so a model trained without flips sees the mirror as an image it never met.
- `crops`: the image and five crops of `CROP_SIDE` of its side (the centre and the four corners), each
  resized back to the input size: views of the kind a recipe's random resized crops train on.

A checkpoint says which mode it answers with (`tta`, or its training's `params.tta`); evaluation, calibration
and serving all read it there (`checkpoint_tta`), so thresholds chosen on averaged outputs are applied to
averaged outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ml.config import TTA_MODES, TTAMode

CROP_SIDE = 0.9


def tta_mode(value: object) -> TTAMode:
    """A mode from its stored or given form: a mode name, or a bool (True: `hflip`, as `tta` once meant)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "hflip"
    if isinstance(value, str) and value in TTA_MODES:
        return value  # type: ignore[return-value]
    raise ValueError(f"tta must be one of {', '.join(TTA_MODES)} (or true / false); got {value!r}")


def checkpoint_tta(ckpt: Mapping[str, Any]) -> TTAMode:
    """The mode a checkpoint answers with: its own `tta`, else the one its training evaluated with."""
    if ckpt.get("tta") is not None:
        return tta_mode(ckpt["tta"])
    params = (ckpt.get("train_config") or {}).get("params") or {}
    return tta_mode(params.get("tta", False))


def crop_views(x: torch.Tensor, side: float = CROP_SIDE) -> list[torch.Tensor]:
    """The centre and four corner crops of `side` of a (B, C, S, S) batch, each resized back to S x S."""
    size = x.shape[-1]
    c = max(1, round(size * side))
    starts = ((size - c) // 2, 0, size - c)
    corners = [(starts[0], starts[0]), (0, 0), (0, starts[2]), (starts[2], 0), (starts[2], starts[2])]
    return [F.interpolate(x[..., r:r + c, q:q + c], size=(size, size), mode="bilinear", align_corners=False)
            for r, q in corners]


def views(x: torch.Tensor, mode: TTAMode) -> list[torch.Tensor]:
    """The batches a model is run on for `mode`, the unchanged batch first."""
    if mode == "hflip":
        return [x, torch.flip(x, dims=[3])]
    if mode == "crops":
        return [x, *crop_views(x)]
    return [x]


def averaged_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: TTAMode) -> torch.Tensor:
    """The model's logits averaged over the views of `x` (float32), the views run as one batch."""
    batch = views(x, mode)
    if len(batch) == 1:
        return model(x).float()
    logits = model(torch.cat(batch)).float()
    return logits.view(len(batch), x.shape[0], *logits.shape[1:]).mean(dim=0)
