"""`check_model_kwargs(name, kwargs)`: a model's options checked before anything is queued or trained.

The options a model takes are read from its entrypoint and the class it builds (their keyword-only
parameters and type hints), so a new model is checked for free. Each value is validated against its
type hint with bounds that keep a model buildable (numbers and sequences of sane size), then the model
is built on PyTorch's `meta` device (no memory, no weights) to catch what only its constructor knows,
such as a depth that does not match the input size.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError

from ml.errors import ModelError
from ml.models.factory import MODELS

MAX_NUMBER = 8192  # widths, depths, heads: far beyond any model here, and far below an absurd one
MAX_ITEMS = 16  # layers in a sequence option
NOT_OPTIONS = {"cfg", "pretrained_path", "self"}


class ModelOptionError(ModelError):
    """A model option is wrong; `field` names it (inside `model_kwargs`), or is None when several together
    are the problem."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message = field, message


def model_options(name: str) -> dict[str, Any]:
    """The options model `name` takes, as {option: type hint}."""
    factory, _ = MODELS.get(name)
    options: dict[str, Any] = {}
    built = typing.get_type_hints(factory).get("return")
    sources: list[Callable[..., Any]] = [factory]
    if inspect.isclass(built):
        sources.append(built.__init__)
    for source in reversed(sources):  # the entrypoint's own options win over the class's
        hints = typing.get_type_hints(source)
        for param in inspect.signature(source).parameters.values():
            if param.kind is inspect.Parameter.KEYWORD_ONLY and param.name not in NOT_OPTIONS:
                options[param.name] = hints.get(param.name, Any)
    return options


def check_model_kwargs(name: str, kwargs: dict[str, Any], *, input_size: int | None = None,
                       in_chans: int | None = None) -> None:
    """ModelOptionError naming the first option of `kwargs` that model `name` does not take, or whose value
    it cannot use (built and run on `input_size` images with `in_chans` channels, the model's own by
    default); ModelError (unknown model) from the registry."""
    options = model_options(name)
    for key, value in kwargs.items():
        if key not in options:
            known = ", ".join(sorted(options)) or "none"
            raise ModelOptionError(key, f"model '{name}' has no option '{key}' (its options: {known})")
        try:
            TypeAdapter(options[key]).validate_python(value, strict=isinstance(value, (bool, str)))
        except ValidationError as exc:
            raise ModelOptionError(key, f"expected {_describe(options[key])}: "
                                        f"{exc.errors()[0]['msg']}") from None
        problem = _out_of_bounds(value)
        if problem:
            raise ModelOptionError(key, problem)
    if kwargs:
        _try_build(name, kwargs, input_size, in_chans)


def _out_of_bounds(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None if not isinstance(value, str) or len(value) <= 100 else "at most 100 characters"
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            return f"must be a finite number within +-{MAX_NUMBER}; got {value}"
        return None
    if isinstance(value, dict):  # options passed on to other models (an ensemble's `member_kwargs`)
        if len(value) > MAX_ITEMS:
            return f"at most {MAX_ITEMS} entries; got {len(value)}"
        for key, item in value.items():
            problem = _out_of_bounds(key) or _out_of_bounds(item)
            if problem:
                return f"{key}: {problem}"
        return None
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            return f"at most {MAX_ITEMS} items; got {len(value)}"
        for item in value:
            problem = _out_of_bounds(item)
            if problem:
                return problem
        return None
    return f"unsupported value of type {type(value).__name__}"


def _try_build(name: str, kwargs: dict[str, Any], input_size: int | None, in_chans: int | None) -> None:
    """Build the model and run a forward pass on the meta device: shapes only, no memory, no arithmetic."""
    factory, cfg = MODELS.get(name)
    cfg = cfg.replace(input_size=input_size or cfg.input_size, in_chans=in_chans or cfg.in_chans)
    try:
        with torch.device("meta"):
            model = factory(cfg, pretrained_path=None, **kwargs).eval()
            model(torch.empty(2, cfg.in_chans, cfg.input_size, cfg.input_size))
    except (TypeError, ValueError, RuntimeError, ModelError) as exc:  # ModelError: an ensemble's member
        field = next(iter(kwargs)) if len(kwargs) == 1 else None
        raise ModelOptionError(field, f"model '{name}' cannot be built or run with these options: {exc}") from None


def _describe(hint: Any) -> str:
    if inspect.isclass(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")
