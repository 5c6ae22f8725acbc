"""Dataset adapters, registered by name.

`create_dataset(name, root, **options)` builds any registered adapter; `list_datasets()` enumerates
them. Names are stable ids stored in the registry database. (The registry-by-decorator idea follows
timm's `_registry.py`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.data.base import ArrayImages, CXRDataset, DataPath, FileImages, ImageSource, NamesPath, Task
from ml.errors import DatasetError

DatasetFactory = Callable[..., CXRDataset]

_DATASETS: dict[str, DatasetFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(name: str, *, description: str = "") -> Callable[[DatasetFactory], DatasetFactory]:
    """Register an adapter `factory(root: Path, **options) -> CXRDataset` under `name`."""

    def decorator(factory: DatasetFactory) -> DatasetFactory:
        if name in _DATASETS:
            raise ValueError(f"dataset '{name}' is already registered")
        _DATASETS[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().splitlines()[0]
        return factory

    return decorator


def register_alias(old: str, new: str) -> None:
    """Keep a renamed dataset's old name working (with a warning)."""
    _ALIASES[old] = new


def _resolve(name: str) -> str:
    _load_adapters()
    if name in _ALIASES:
        warnings.warn(f"dataset '{name}' was renamed to '{_ALIASES[name]}'", DeprecationWarning, stacklevel=3)
        name = _ALIASES[name]
    if name not in _DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; known: {', '.join(list_datasets())}")
    return name


def list_datasets() -> list[str]:
    _load_adapters()
    return sorted(_DATASETS)


def describe_dataset(name: str) -> str:
    return _DESCRIPTIONS[_resolve(name)]


def dataset_factory(name: str) -> DatasetFactory:
    """The adapter registered as `name` (its signature lists its options)."""
    return _DATASETS[_resolve(name)]


def create_dataset(name: str, root: str | Path, **options: Any) -> CXRDataset:
    """Build dataset `name` from files under `root`."""
    return dataset_factory(name)(Path(root), **options)


def _load_adapters() -> None:
    # Importing the adapter modules registers them; done lazily so `ml.data.base` stays light.
    from ml.data import chexpert, folder, medmnist, nih  # noqa: F401


__all__ = [
    "ArrayImages",
    "CXRDataset",
    "DataPath",
    "FileImages",
    "ImageSource",
    "NamesPath",
    "Task",
    "create_dataset",
    "dataset_factory",
    "describe_dataset",
    "list_datasets",
    "register_alias",
    "register_dataset",
]
