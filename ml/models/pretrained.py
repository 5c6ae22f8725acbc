"""ImageNet weights from a local file: where to find them and how to load them into a backbone.

Nothing here downloads. Weights come from an explicit path or from torch's hub cache
(`<torch.hub.get_dir()>/checkpoints/<file>`), where torchvision itself would have put them; a missing
file is a `ModelError` that says where we looked and how to provide it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ml.errors import ModelError
from ml.models.base import CXRModel, ModelConfig

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]


def hub_checkpoint_dir() -> Path:
    """torch's hub cache for checkpoints (`$TORCH_HOME/hub/checkpoints`, resolved by torch itself)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_config(name: str, *, cam_layer: str, pretrained_file: str, description: str) -> ModelConfig:
    """The config of a torchvision ImageNet backbone: 224 px, 3 channels, ImageNet normalisation."""
    return ModelConfig(
        name=name,
        input_size=224,
        in_chans=3,
        normalization="imagenet",
        cam_layer=cam_layer,
        pretrained_file=pretrained_file,
        description=description,
    )


def locate_pretrained(cfg: ModelConfig, path: str | Path | None) -> Path:
    """The file holding `cfg`'s ImageNet weights: `path` when given, else the hub cache's copy."""
    if cfg.pretrained_file is None:
        raise ModelError(
            f"model '{cfg.name}' has no ImageNet weights; build it with pretrained=False "
            "(train from scratch) or load one of your own checkpoints"
        )
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise ModelError(f"pretrained weights file not found: {explicit}")
        return explicit
    cached = hub_checkpoint_dir() / cfg.pretrained_file
    if not cached.is_file():
        raise ModelError(
            f"ImageNet weights for '{cfg.name}' not found: looked for {cached}. Nothing is downloaded here: "
            f"fetch '{cfg.pretrained_file}' (torchvision's file) on a machine with internet access and "
            f"copy it to {cached.parent}, or pass pretrained_path=<file>"
        )
    return cached


def adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-conv kernel for `in_chans` inputs: RGB kernels summed for 1 channel, else unchanged.

    Summing keeps the response to a grey image (R = G = B) exactly what the RGB network computed.
    """
    have = weight.shape[1]
    if have == in_chans:
        return weight
    if have == 3 and in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    raise ModelError(f"cannot adapt a first conv with {have} input channels to {in_chans} channels")


def read_state_dict(source: str | Path | StateDict) -> dict[str, torch.Tensor]:
    """A state dict from a mapping or a file read safely (`weights_only=True`) onto the CPU."""
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        try:
            state = torch.load(Path(source), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"pretrained weights file not found: {source}") from None
        except Exception as exc:  # corrupt file, pickled code, not a torch file: all unusable the same way
            raise ModelError(f"cannot read pretrained weights from {source}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = "the given object" if isinstance(source, Mapping) else str(source)
        raise ModelError(f"{what} is not a state dict (a mapping of parameter names to tensors)")
    return state


def load_pretrained_backbone(
    model: CXRModel,
    source: str | Path | StateDict,
    *,
    first_conv: str,
    drop_prefixes: tuple[str, ...] = ("classifier.",),
    remap: Callable[[str], str] | None = None,
) -> None:
    """Load ImageNet backbone weights into `model`, leaving its new head as initialised.

    `drop_prefixes` names the original classifier's keys in the file; `first_conv` is the conv whose
    kernel is adapted to the model's input channels; `remap` renames keys (legacy formats). Every backbone
    key must match: a missing or unexpected key is a `ModelError` listing them, so a wrong file fails
    loudly instead of training from a half-random backbone.
    """
    state = read_state_dict(source)
    if remap is not None:
        state = {remap(k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    conv_key = f"{first_conv}.weight"
    if conv_key in state:
        state[conv_key] = adapt_conv_weight(state[conv_key], model.cfg.in_chans)
    head_prefixes = _module_prefixes(model, model.head())
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelError(f"pretrained weights do not fit '{model.cfg.name}': {exc}") from exc
    missing = [k for k in result.missing_keys if not k.startswith(head_prefixes)]
    unexpected = result.unexpected_keys
    if missing or unexpected:
        raise ModelError(
            f"pretrained weights do not match '{model.cfg.name}': {len(missing)} missing backbone keys "
            f"{_preview(missing)}, {len(unexpected)} unexpected keys {_preview(unexpected)}; "
            "is this the right file for this model?"
        )
    log.info("loaded pretrained backbone for %s (%d tensors)", model.cfg.name, len(state))


def _module_prefixes(model: nn.Module, sub: nn.Module) -> tuple[str, ...]:
    """The state-dict prefixes under which `sub` appears in `model`."""
    return tuple(f"{name}." for name, m in model.named_modules() if m is sub and name)


def _preview(keys: list[str], most: int = 5) -> str:
    shown = ", ".join(keys[:most])
    return f"[{shown}{', ...' if len(keys) > most else ''}]"
