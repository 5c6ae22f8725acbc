"""Tests for the CheXpert adapter on CSVs written here in the official column layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ml.data import create_dataset
from ml.data.base import Task
from ml.data.chexpert import COMPETITION_LABELS, LABELS
from ml.errors import DatasetError

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS]
BLANK = ""


def row(folder: str, split: str, patient: int, view: str, values: dict[str, object]) -> dict[str, object]:
    frontal = view != "Lateral"
    name = "view1_frontal.jpg" if frontal else "view2_lateral.jpg"
    return {
        "Path": f"{folder}/{split}/patient{patient:05d}/study1/{name}",
        "Sex": "Female" if patient % 2 else "Male",
        "Age": 40 + patient,
        "Frontal/Lateral": "Frontal" if frontal else "Lateral",
        "AP/PA": view if frontal else BLANK,
        **{label: values.get(label, BLANK) for label in LABELS},
    }


def make_chexpert(parent: Path, folder: str = "CheXpert-v1.0-small", n_train_patients: int = 12) -> Path:
    """A tiny CheXpert tree under `parent`: CSVs in the official layout and 8x8 JPEGs."""
    train = []
    for p in range(1, n_train_patients + 1):
        values = {"Edema": float(p % 2)}
        if p == 1:
            values = {"Cardiomegaly": 1.0, "Edema": -1.0, "Atelectasis": 0.0}
        train.append(row(folder, "train", p, "PA" if p % 3 else "AP", values))
        train.append(row(folder, "train", p, "Lateral", {"No Finding": 1.0}))
    valid = [row(folder, "valid", 64540 + p, "AP", {"Pleural Effusion": 1.0, "Edema": 0.0}) for p in range(3)]
    root = parent / folder
    for name, rows in (("train.csv", train), ("valid.csv", valid)):
        root.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=HEADER).to_csv(root / name, index=False)
        for r in rows:
            image = parent / r["Path"]
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (8, 8), 128).save(image)
    return root


def value(ds, patient: str, label: str, view: str = "PA") -> float:
    mask = (ds.metadata["patient_id"] == patient) & (ds.metadata["view"] == view)
    return float(ds.labels[mask.to_numpy(), ds.pathologies.index(label)][0])


@pytest.mark.parametrize(("policy", "expected"), [("ones", 1.0), ("zeros", 0.0), ("ignore", math.nan)])
def test_uncertainty_policies(tmp_path: Path, policy: str, expected: float) -> None:
    root = make_chexpert(tmp_path)
    ds = create_dataset("chexpert", root, uncertainty=policy)
    got = value(ds, "patient00001", "Edema")
    assert got == expected or (math.isnan(expected) and math.isnan(got))
    assert value(ds, "patient00001", "Cardiomegaly") == 1.0
    assert value(ds, "patient00001", "Atelectasis") == 0.0


def test_blank_policy(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path)
    assert value(create_dataset("chexpert", root), "patient00001", "Fracture") == 0.0
    assert math.isnan(value(create_dataset("chexpert", root, blank="nan"), "patient00001", "Fracture"))


def test_metadata_splits_and_images(tmp_path: Path) -> None:
    ds = create_dataset("chexpert", make_chexpert(tmp_path), seed=0, val_fraction=0.25)
    assert ds.task is Task.MULTILABEL and ds.pathologies == LABELS and len(ds) == 27
    test = ds.split("test").metadata
    assert len(test) == 3 and test["path"].str.contains("/valid/").all()
    train_val = ds.metadata[ds.metadata["split"] != "test"]
    assert set(train_val["split"]) == {"train", "val"}
    assert (train_val.groupby("patient_id")["split"].nunique() == 1).all()
    first = ds.metadata.iloc[0]
    assert (first["patient_id"], first["view"], first["sex"], first["age"]) == ("patient00001", "PA", "F", 41)
    assert set(ds.metadata["view"]) == {"PA", "AP", "Lateral"}
    assert ds[0][0].shape == (8, 8)


def test_frontal_only_and_label_subsets(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path)
    ds = create_dataset("chexpert", root, frontal_only=True, labels="competition")
    assert len(ds) == 15 and "Lateral" not in set(ds.metadata["view"])
    assert ds.pathologies == COMPETITION_LABELS and ds.labels.shape == (15, 5)
    assert create_dataset("chexpert", root, labels=["Edema", "Fracture"]).pathologies == ["Edema", "Fracture"]
    with pytest.raises(DatasetError, match="unknown name.*Pneumonitis.*available"):
        create_dataset("chexpert", root, labels=["Edema", "Pneumonitis"])


def test_root_may_be_the_parent_or_a_renamed_folder(tmp_path: Path) -> None:
    make_chexpert(tmp_path)
    assert len(create_dataset("chexpert", tmp_path)) == 27
    renamed = tmp_path / "chexpert-local"
    (tmp_path / "CheXpert-v1.0-small").rename(renamed)
    ds = create_dataset("chexpert", renamed)
    assert len(ds) == 27 and all(Path(p).is_file() for p in ds.metadata["path"])


def test_split_is_deterministic(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path, n_train_patients=40)
    a = create_dataset("chexpert", root, seed=5).metadata["split"]
    assert a.tolist() == create_dataset("chexpert", root, seed=5).metadata["split"].tolist()
    assert (a == "val").sum() > 0


def test_missing_files_columns_and_values(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path)
    with pytest.raises(DatasetError, match="uncertainty='maybe'"):
        create_dataset("chexpert", root, uncertainty="maybe")
    table = pd.read_csv(root / "train.csv")
    table.loc[3, "Edema"] = 2.0
    table.to_csv(root / "train.csv", index=False)
    with pytest.raises(DatasetError, match="'Edema' holds '2.0'"):
        create_dataset("chexpert", root)
    table.drop(columns=["Frontal/Lateral"]).to_csv(root / "train.csv", index=False)
    with pytest.raises(DatasetError, match="missing column.*'Frontal/Lateral'"):
        create_dataset("chexpert", root)
    table.loc[3, "Edema"] = 1.0
    table.to_csv(root / "train.csv", index=False)
    (root / "valid.csv").unlink()
    with pytest.raises(DatasetError, match="CheXpert table not found: .*valid.csv"):
        create_dataset("chexpert", root)
    with pytest.raises(DatasetError, match="train.csv not found"):
        create_dataset("chexpert", tmp_path / "elsewhere")


def test_no_images_is_an_error(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path)
    for image in sorted(tmp_path.rglob("*.jpg")):
        image.unlink()
    with pytest.raises(DatasetError, match="CheXpert images not found.*view1_frontal.jpg"):
        create_dataset("chexpert", root)


def test_labels_are_float32_with_known_values(tmp_path: Path) -> None:
    ds = create_dataset("chexpert", make_chexpert(tmp_path), uncertainty="ones")
    assert ds.labels.dtype == np.float32 and set(np.unique(ds.labels)) <= {0.0, 1.0}


def test_csv_paths_never_leave_the_dataset_folder(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path / "data")
    outside = tmp_path / "outside" / "patient09999" / "study1" / "view1_frontal.jpg"
    outside.parent.mkdir(parents=True)
    Image.new("L", (8, 8), 255).save(outside)
    table = pd.read_csv(root / "train.csv")
    inner = outside.relative_to(tmp_path / "outside")
    escapes = [f"CheXpert-v1.0-small/../../outside/{inner}", f"CheXpert-v1.0-small/train/../../../outside/{inner}",
               str(outside)]
    extra = [{**table.iloc[0].to_dict(), "Path": p} for p in escapes]
    pd.concat([table, pd.DataFrame(extra)], ignore_index=True).to_csv(root / "train.csv", index=False)
    ds = create_dataset("chexpert", root)
    assert len(ds) == 27  # the three rows naming a file outside are dropped, the file exists all the same
    assert all(Path(p).resolve().is_relative_to(root.resolve()) for p in ds.metadata["path"])
