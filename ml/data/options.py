"""An adapter's options as a pydantic model, derived from its keyword-only signature.

Adding an adapter stays one file: its typed signature is the schema. Unknown keys are refused, values
must have the declared types, integers are bounded (a 32-bit range), floats finite and strings of a
sane length, so a caller cannot make an option overflow where the adapter uses it. Options typed
`DataPath` name files or folders; `path_options` lists them for a service that must hold them to its
data roots before the adapter opens anything.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ml.data.base import NamesPath
from ml.data.factory import dataset_factory

MAX_OPTION_INT = 2**31 - 1
MAX_OPTION_TEXT = 1000
MAX_PATH_TEXT = 4096

PathText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_TEXT)]


@functools.cache
def options_model(name: str) -> type[BaseModel]:
    """A model that validates the options of adapter `name` (extra keys forbidden)."""
    factory = dataset_factory(name)
    hints = typing.get_type_hints(factory, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(factory).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (_checked(hints[param.name]), default)
    return create_model(f"{name}_options", __config__=ConfigDict(extra="forbid"), **fields)


@functools.cache
def path_options(name: str) -> tuple[str, ...]:
    """The options of adapter `name` that name a file or folder (typed `DataPath`)."""
    hints = typing.get_type_hints(dataset_factory(name), include_extras=True)
    return tuple(key for key, hint in hints.items() if _names_path(hint))


def validate_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options as the adapter takes them (only those given); pydantic's ValidationError otherwise."""
    return options_model(name).model_validate(options).model_dump(exclude_unset=True)


def _names_path(hint: Any) -> bool:
    if typing.get_origin(hint) is Annotated:
        return any(isinstance(m, NamesPath) for m in typing.get_args(hint)[1:])
    return any(_names_path(arg) for arg in typing.get_args(hint))


def _checked(hint: Any) -> Any:
    """`hint` with bounds on its ints, floats and strings, and DataPath as a string of path length."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        if _names_path(hint):
            return PathText
        return Annotated[(_checked(args[0]), *args[1:])]
    if origin in (Union, types.UnionType):
        return Union[tuple(_checked(a) for a in args)]  # noqa: UP007 - built from a tuple
    if origin is typing.Literal:
        return hint
    if origin is not None and args:  # Sequence[str], Mapping[str, float], ...
        return origin[tuple(_checked(a) for a in args)]
    if hint is int:
        return Annotated[int, Field(ge=-MAX_OPTION_INT, le=MAX_OPTION_INT)]
    if hint is float:
        return Annotated[float, Field(allow_inf_nan=False)]
    if hint is str:
        return Annotated[str, StringConstraints(max_length=MAX_OPTION_TEXT)]
    return hint
