"""Dataset adapters, registered by name (see `ml.data.factory`), and the contract they fulfil (`ml.data.base`).

Each adapter module registers itself when imported; the imports below are the list of what exists. Adding an
adapter is one file, plus its line here. (The registry-by-decorator idea follows timm's `_registry.py`.)
"""

from __future__ import annotations

# the adapters, each registering itself
from ml.data import chexpert, folder, medmnist, merged, nih  # noqa: F401
from ml.data.base import ArrayImages, CXRDataset, DataPath, FileImages, ImageSource, NamesPath, Task
from ml.data.factory import (
    create_dataset,
    dataset_factory,
    describe_dataset,
    list_datasets,
    register_alias,
    register_dataset,
)

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
