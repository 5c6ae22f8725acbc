"""Tests for the dataset registry and for what every adapter promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.data import create_dataset, describe_dataset, list_datasets
from ml.errors import DatasetError

NAMES = ["chestmnist", "chexpert", "folder", "medmnist", "merged", "nih", "pneumoniamnist"]


def test_every_adapter_is_registered_with_a_description() -> None:
    assert list_datasets() == NAMES
    assert all(describe_dataset(name) for name in NAMES)


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'padchest'.*chestmnist.*pneumoniamnist"):
        create_dataset("padchest", tmp_path)


@pytest.mark.parametrize(
    ("name", "relative", "options"),
    [
        ("pneumoniamnist", "pneumoniamnist", {}),
        ("chestmnist", "chestmnist-nih1000/nih1000_chestmnist_format_28.npz", {}),
        ("nih", "nih-sample", {"split": "patient"}),
        ("folder", "kermany-sample", {"group_duplicates": True}),
    ],
)
def test_adapters_fulfil_the_contract_and_leave_global_random_state_alone(
    data_dir: Path, name: str, relative: str, options: dict[str, object]
) -> None:
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    ds = create_dataset(name, data_dir / relative, **options)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert ds.labels.dtype == np.float32 and ds.labels.shape == (len(ds), len(ds.pathologies))
    assert len(ds.metadata) == len(ds) and ds.metadata["split"].notna().all()
    assert set(ds.splits()) <= {"train", "val", "test"} and "train" in ds.splits()
    image, _ = ds[len(ds) - 1]
    assert image.dtype == np.float32 and image.ndim == 2 and 0.0 <= image.min() <= image.max() <= 1.0
