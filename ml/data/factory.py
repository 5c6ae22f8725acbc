"""Dataset adapters by name: `create_dataset(name, root, **options)`, `list_datasets()`, `describe_dataset(name)`,
and `register_dataset`, which each adapter module (`ml.data.nih`, `ml.data.medmnist`, ...) uses to register
itself. Names are stable ids stored in the registry database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.data.base import CXRDataset
from ml.errors import DatasetError
from ml.registry import Registry

DatasetFactory = Callable[..., CXRDataset]

DATASETS: Registry[DatasetFactory] = Registry("dataset", DatasetError)


def register_dataset(name: str, *, description: str = "") -> Callable[[DatasetFactory], DatasetFactory]:
    """Register an adapter `factory(root: Path, **options) -> CXRDataset` under `name`."""

    def decorator(factory: DatasetFactory) -> DatasetFactory:
        DATASETS.add(name, factory, description or (factory.__doc__ or "").strip().splitlines()[0])
        return factory

    return decorator


def register_alias(old: str, new: str) -> None:
    """Keep a renamed dataset's old name working (with a warning)."""
    DATASETS.alias(old, new)


def list_datasets() -> list[str]:
    return DATASETS.names()


def describe_dataset(name: str) -> str:
    return DATASETS.describe(name)


def dataset_factory(name: str) -> DatasetFactory:
    """The adapter registered as `name` (its signature lists its options)."""
    return DATASETS.get(name)


def create_dataset(name: str, root: str | Path, **options: Any) -> CXRDataset:
    """Build dataset `name` from files under `root`."""
    return dataset_factory(name)(Path(root), **options)
