"""Models by name: `create_model(name, ...)`, `list_models()`, `get_model_config(name)`, and `register_model`,
which each family module (`ml.models.small`, `ml.models.densenet`, ...) uses to register its entrypoints.

Every entrypoint is a function `fn(cfg: ModelConfig, *, pretrained_path: Path | None, **kwargs)` registered
with its default `ModelConfig`. (The factory follows timm's `_factory.py`.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.errors import ModelError
from ml.models.base import NORMALIZATIONS, CXRModel, ModelConfig
from ml.models.pretrained import locate_pretrained
from ml.registry import Registry

ModelFactory = Callable[..., CXRModel]

MODELS: Registry[tuple[ModelFactory, ModelConfig]] = Registry("model", ModelError)


def register_model(cfg: ModelConfig) -> Callable[[ModelFactory], ModelFactory]:
    def decorator(factory: ModelFactory) -> ModelFactory:
        if cfg.normalization not in NORMALIZATIONS:
            raise ValueError(f"model '{cfg.name}': unknown normalization '{cfg.normalization}'")
        MODELS.add(cfg.name, (factory, cfg))
        return factory

    return decorator


def register_alias(old: str, new: str) -> None:
    """Keep a renamed model's old name working (with a warning)."""
    MODELS.alias(old, new)


def list_models() -> list[str]:
    return MODELS.names()


def get_model_config(name: str) -> ModelConfig:
    return MODELS.get(name)[1]


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    pretrained: bool = False,
    pretrained_path: str | Path | None = None,
    **kwargs: Any,
) -> CXRModel:
    """Build model `name` with `num_classes` outputs and `in_chans` (1 or 3) input channels.

    `pretrained=True` loads ImageNet weights from `pretrained_path` or torch's hub cache, never from the
    network; a clear `ModelError` says where it looked when the file is absent.
    """
    factory, default_cfg = MODELS.get(name)
    cfg = default_cfg.replace(
        num_classes=num_classes if num_classes is not None else default_cfg.num_classes,
        in_chans=in_chans if in_chans is not None else default_cfg.in_chans,
    )
    if cfg.in_chans not in (1, 3):
        raise ModelError(f"in_chans must be 1 or 3; got {cfg.in_chans}")
    if cfg.num_classes < 1:
        raise ModelError(f"num_classes must be at least 1; got {cfg.num_classes}")
    path = None
    if pretrained:
        path = locate_pretrained(cfg, pretrained_path)
    try:
        model = factory(cfg, pretrained_path=path, **kwargs)
    except (TypeError, ValueError) as exc:  # model_kwargs the entrypoint does not take, or cannot use
        raise ModelError(f"model '{name}' cannot be built with {sorted(kwargs)}: {exc}") from None
    if getattr(model, "cfg", None) is None:  # a factory may refine cfg from its kwargs (ViT depth: CAM layer)
        model.cfg = cfg
    return model
