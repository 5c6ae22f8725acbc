"""CheXpert-v1.0(-small): `train.csv` and `valid.csv` with 14 observation columns.

Each observation is 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or blank (not mentioned in the
report). Uncertain values follow `uncertainty=` (Irvin et al. 2019): "ones" (U-Ones, 1), "zeros"
(U-Zeros, 0) or "ignore" (U-Ignore, NaN, so the loss masks it; the default). Blank follows `blank=`:
"zero" (the usual convention: a finding the report does not mention is taken as absent; the default) or
"nan" (unknown). `valid.csv` rows form the `test` split (the official validation set is the usual test
set); `train.csv` rows are cut into train/val by patient. Paths in the CSVs start with the dataset
folder (`CheXpert-v1.0-small/train/patient00001/...`) and are resolved inside the folder holding the CSVs
(whatever its name); a Path that is absolute or climbs out with `..` is never read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ml.data._util import (
    choose,
    drop_rows,
    normalise_sex,
    parse_age,
    read_table,
    require_columns,
    select_names,
)
from ml.data.base import CXRDataset, FileImages, Task
from ml.data.factory import register_dataset
from ml.data.splits import patient_split
from ml.errors import DatasetError

logger = logging.getLogger(__name__)

LABELS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]
COMPETITION_LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
UNCERTAINTY = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}
BLANK = {"zero": 0.0, "nan": np.nan}
FOLDER_NAMES = ("CheXpert-v1.0-small", "CheXpert-v1.0")


@register_dataset("chexpert", description="CheXpert (train.csv/valid.csv), 14 observations, multi-label")
def chexpert(
    root: Path,
    *,
    labels: str | Sequence[str] = "all",
    uncertainty: str = "ignore",
    blank: str = "zero",
    frontal_only: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> CXRDataset:
    """CheXpert under `root` (the folder holding the CSVs, or its parent).

    `labels` is "all" (14), "competition" (the 5 competition observations) or a list of names.
    """
    pathologies = _pathologies(labels)
    uncertain_value = UNCERTAINTY[choose("uncertainty", uncertainty, list(UNCERTAINTY))]
    blank_value = BLANK[choose("blank", blank, list(BLANK))]
    csv_dir = _csv_dir(root)
    tables = []
    for file, split in (("train.csv", None), ("valid.csv", "test")):
        table = read_table(csv_dir / file, "CheXpert table")
        require_columns(table, (*COLUMNS, *pathologies), csv_dir / file)
        tables.append(table.assign(split=split))
    table = pd.concat(tables, ignore_index=True)
    if frontal_only:
        frontal = (table["Frontal/Lateral"] == "Frontal").to_numpy()
        table = drop_rows(table, frontal, "lateral view (frontal_only=True)", "chexpert")

    paths = _resolve_paths(table["Path"].astype(str), csv_dir)
    table = drop_rows(table.assign(path=paths), paths.notna().to_numpy(), "image file not found", "chexpert")
    patient = table["Path"].astype(str).str.extract(r"(patient\d+)", expand=False)
    if patient.isna().any():
        bad = table["Path"][patient.isna()].iloc[0]
        raise DatasetError(f"CheXpert Path without a 'patientNNNNN' part: {bad!r}")

    values = _label_values(table, pathologies, uncertain_value, blank_value)
    metadata = pd.DataFrame(
        {
            "split": table["split"],
            "patient_id": patient,
            "view": table["AP/PA"].fillna(table["Frontal/Lateral"]).astype(str),
            "age": parse_age(table["Age"]),
            "sex": normalise_sex(table["Sex"]),
            "name": table["Path"].astype(str),
            "path": table["path"].astype(str),
        }
    )
    train = metadata["split"].isna().to_numpy()
    cut = {"train": 1.0 - val_fraction, "val": val_fraction}
    metadata.loc[train, "split"] = patient_split(patient[train], cut, seed, values[train])
    images = FileImages(metadata["path"])
    return CXRDataset("chexpert", pathologies, values, Task.MULTILABEL, metadata, images)


def _pathologies(labels: str | Sequence[str]) -> list[str]:
    if labels == "all":
        return list(LABELS)
    if labels == "competition":
        return list(COMPETITION_LABELS)
    if isinstance(labels, str):
        raise DatasetError(f"option labels={labels!r}: use 'all', 'competition' or a list from {LABELS}")
    return select_names("labels", labels, LABELS)


def _csv_dir(root: Path) -> Path:
    """The folder holding train.csv: `root` itself or its CheXpert-v1.0(-small) subfolder."""
    for folder in (root, *(root / name for name in FOLDER_NAMES)):
        if (folder / "train.csv").is_file():
            return folder
    raise DatasetError(f"CheXpert train.csv not found in {root} or {root}/{{{','.join(FOLDER_NAMES)}}}")


def _resolve_paths(rel: pd.Series, csv_dir: Path) -> pd.Series:
    """Image paths inside `csv_dir` (None where the file is absent or the CSV's path would leave it).

    CSV paths start with the dataset folder's own name (`CheXpert-v1.0-small/train/...`); that first
    part is dropped and the rest resolved from the folder, whatever it is called now. A path that is
    absolute or climbs with `..` is never opened: the CSV cannot send the adapter out of its folder.
    """
    parts = rel.map(PurePosixPath)
    inside = ~parts.map(lambda p: p.is_absolute() or ".." in p.parts or len(p.parts) < 2).to_numpy()
    if not inside.all():
        logger.warning("chexpert: %d rows have an absolute Path, a '..' in it or no folder part; they are "
                       "not read (e.g. %r)", int((~inside).sum()), rel[~inside].iloc[0])
    resolved = pd.Series([str(csv_dir.joinpath(*p.parts[1:])) if ok else None for p, ok in zip(parts, inside)],
                         index=rel.index, dtype=object)
    probe = resolved[inside].iloc[:100]
    if not any(Path(p).is_file() for p in probe):
        example = rel[inside].iloc[0] if inside.any() else rel.iloc[0]
        raise DatasetError(f"CheXpert images not found: e.g. {example} is not under {csv_dir}")
    return resolved.where(resolved.map(lambda p: p is not None and Path(p).is_file()))


def _label_values(table: pd.DataFrame, pathologies: list[str], uncertain: float, blank: float) -> np.ndarray:
    """float32 (N, L) with the uncertainty and blank policies applied."""
    raw = np.empty((len(table), len(pathologies)), dtype=np.float64)
    for j, column in enumerate(pathologies):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isin(values, [1.0, 0.0, -1.0]) & table[column].notna().to_numpy()
        if bad.any():
            example = table[column][bad].iloc[0]
            raise DatasetError(
                f"CheXpert column {column!r} holds '{example}' (Path {table['Path'][bad].iloc[0]}); "
                "expected 1, 0, -1 or blank"
            )
        raw[:, j] = values
    out = np.where(raw == -1.0, uncertain, raw)
    return np.where(np.isnan(raw), blank, out).astype(np.float32)
