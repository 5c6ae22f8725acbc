"""Tests for the NIH ChestX-ray14 adapter on the shipped sample, copied here into each layout."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.data import create_dataset
from ml.data._util import CHESTXRAY14_LABELS
from ml.data.base import Task
from ml.errors import DatasetError

CSV = "Data_Entry_2017_v2020.csv"


@pytest.fixture
def sample(data_dir: Path) -> Path:
    return data_dir / "nih-sample"


def flat_copy(sample: Path, root: Path, images_subdir: str = "images") -> Path:
    shutil.copy(sample / CSV, root / CSV)
    shutil.copytree(sample / "images", root / images_subdir, dirs_exist_ok=True)
    return root


def download_layout_copy(sample: Path, root: Path) -> Path:
    """As the original download unpacks: images_001/images/, images_002/images/."""
    shutil.copy(sample / CSV, root / CSV)
    for i, png in enumerate(sorted((sample / "images").glob("*.png"))):
        folder = root / f"images_00{1 + i % 2}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, folder / png.name)
    return root


def assert_patient_disjoint(metadata: pd.DataFrame) -> None:
    assert (metadata.groupby("patient_id")["split"].nunique() == 1).all()


def test_labels_and_metadata_follow_the_table(sample: Path) -> None:
    ds = create_dataset("nih", sample)
    table = pd.read_csv(sample / CSV)
    assert len(ds) == 48 and ds.task is Task.MULTILABEL and ds.pathologies == CHESTXRAY14_LABELS
    by_name = dict(zip(ds.metadata["name"], ds.labels, strict=True))
    for _, row in table.iterrows():
        findings = set(row["Finding Labels"].split("|"))
        expected = [1.0 if label in findings else 0.0 for label in CHESTXRAY14_LABELS]
        assert by_name[row["Image Index"]].tolist() == expected
    first = ds.metadata.set_index("name").loc["00000004_000.png"]
    assert (first["patient_id"], first["view"], first["age"], first["sex"]) == ("4", "AP", 82, "M")
    assert ds[0][0].shape == (64, 64)


@pytest.mark.parametrize("layout", ["images", "flat", "download"])
def test_both_image_layouts(sample: Path, tmp_path: Path, layout: str) -> None:
    if layout == "download":
        root = download_layout_copy(sample, tmp_path)
        assert len(list((tmp_path / "images_002" / "images").glob("*.png"))) == 24
    else:
        root = flat_copy(sample, tmp_path, "images" if layout == "images" else ".")
    ds = create_dataset("nih", root, split="patient")
    assert len(ds) == 48
    assert all(Path(p).is_file() for p in ds.metadata["path"])
    assert ds[5][0].shape == (64, 64)


def test_rows_without_images_are_dropped(
    sample: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = flat_copy(sample, tmp_path)
    for png in sorted((root / "images").glob("*.png"))[:3]:
        png.unlink()
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("nih", root)
    assert len(ds) == 45
    assert "dropped 3 of 48 rows (image file not found)" in caplog.text


def test_no_images_at_all_names_where_it_looked(sample: Path, tmp_path: Path) -> None:
    shutil.copy(sample / CSV, tmp_path / CSV)
    with pytest.raises(DatasetError, match=r"no NIH images.*images_\*"):
        create_dataset("nih", tmp_path)


def test_official_split_lists(sample: Path, tmp_path: Path) -> None:
    root = flat_copy(sample, tmp_path)
    table = pd.read_csv(root / CSV)
    patients = sorted(table["Patient ID"].unique())
    test_names = table.loc[table["Patient ID"].isin(patients[:8]), "Image Index"].tolist()
    trainval = [n for n in table["Image Index"] if n not in test_names][:-2]  # 2 rows in no list
    (root / "test_list.txt").write_text("\n".join(test_names) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(trainval) + "\n")
    ds = create_dataset("nih", root, split="official", val_fraction=0.25, seed=1)
    assert sorted(ds.split("test").metadata["name"]) == sorted(test_names)
    assert len(ds) == 46 and set(ds.splits()) == {"train", "val", "test"}
    assert_patient_disjoint(ds.metadata)
    auto = create_dataset("nih", root, val_fraction=0.25, seed=1)  # split="auto" finds the lists
    assert auto.metadata["split"].tolist() == ds.metadata["split"].tolist()


def test_chexnet_lists_give_membership(sample: Path, tmp_path: Path) -> None:
    root = flat_copy(sample, tmp_path)
    lists = tmp_path / "labels"
    lists.mkdir()
    names = pd.read_csv(root / CSV)["Image Index"].tolist()
    parts = {"train": names[:30], "val": names[30:38], "test": names[38:]}
    for split, members in parts.items():
        lines = [f"{n} " + " ".join(["0"] * 14) for n in members]
        (lists / f"{split}_list.txt").write_text("\n".join(lines))  # CheXNet files lack a final newline
    ds = create_dataset("nih", root, split="chexnet", split_dir=lists)
    for split, members in parts.items():
        assert ds.split(split).metadata["name"].tolist() == members
    auto = create_dataset("nih", root, split_dir=lists)  # split="auto" finds the CheXNet lists
    assert auto.metadata["split"].tolist() == ds.metadata["split"].tolist()


def test_patient_split_is_disjoint_and_seeded(sample: Path) -> None:
    ds = create_dataset("nih", sample, split="patient", seed=7)
    assert_patient_disjoint(ds.metadata)
    assert set(ds.splits()) <= {"train", "val", "test"} and "train" in ds.splits()
    again = create_dataset("nih", sample, split="patient", seed=7)
    assert again.metadata["split"].tolist() == ds.metadata["split"].tolist()
    custom = create_dataset("nih", sample, split="patient", fractions={"train": 0.5, "test": 0.5})
    assert set(custom.splits()) == {"train", "test"}


def test_views_filter(sample: Path) -> None:
    ds = create_dataset("nih", sample, views=["PA"])
    table = pd.read_csv(sample / CSV)
    assert len(ds) == int((table["View Position"] == "PA").sum()) and set(ds.metadata["view"]) == {"PA"}


def test_gzipped_table_and_unknown_findings(
    tmp_path: Path, sample: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = flat_copy(sample, tmp_path)
    table = pd.read_csv(root / CSV)
    table.loc[0, "Finding Labels"] = "Mass|Fracture"
    (root / CSV).unlink()
    with gzip.open(root / (CSV + ".gz"), "wt") as fh:
        table.to_csv(fh, index=False)
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("nih", root)
    assert "Fracture" in caplog.text
    row = ds.labels[ds.metadata["name"] == table.loc[0, "Image Index"]][0]
    assert row[CHESTXRAY14_LABELS.index("Mass")] == 1 and np.nansum(row) == 1


def test_missing_table_column_and_list(sample: Path, tmp_path: Path) -> None:
    root = flat_copy(sample, tmp_path)
    with pytest.raises(DatasetError, match="train_val_list.txt"):
        create_dataset("nih", root, split="official")
    with pytest.raises(DatasetError, match="other.csv"):
        create_dataset("nih", root, csv="other.csv")
    pd.read_csv(root / CSV).drop(columns=["Patient ID"]).to_csv(root / CSV, index=False)
    with pytest.raises(DatasetError, match="missing column.*'Patient ID'"):
        create_dataset("nih", root)
    (root / CSV).unlink()
    with pytest.raises(DatasetError, match=r"no Data_Entry_2017\*\.csv"):
        create_dataset("nih", root)
    with pytest.raises(DatasetError, match="split='bogus'"):
        create_dataset("nih", sample, split="bogus")
