"""Small helpers the dataset adapters share: reading tables, checking options, finding image files.

Every check raises `DatasetError` with a message that names the file, column, folder or option.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from ml.errors import DatasetError

logger = logging.getLogger(__name__)

# NIH ChestX-ray14 order, shared by MedMNIST's ChestMNIST and CheXNet.
CHESTXRAY14_LABELS = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")

T = TypeVar("T")


def read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV (plain or .gz) that must exist; `what` says what it is for the error message."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DatasetError(f"cannot read {what} {path} as CSV: {exc}") from None


def require_columns(table: pd.DataFrame, columns: Iterable[str], source: Path) -> None:
    """Fail naming every missing column and the file it was expected in."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; found {', '.join(table.columns)}"
        )


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path} is not a folder")
    return path


def choose(option: str, value: T, allowed: Sequence[T]) -> T:
    """Check an option against its allowed values."""
    if value not in allowed:
        raise DatasetError(f"option {option}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


def select_names(option: str, wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """The `wanted` subset of `available`, in the order given; unknown names are an error."""
    unknown = [w for w in wanted if w not in available]
    if unknown or not wanted:
        what = f"unknown name(s) {unknown}" if unknown else "no names given"
        raise DatasetError(f"option {option}: {what}; available: {', '.join(available)}")
    return list(wanted)


def one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(indices), num_classes), dtype=np.float32)
    out[np.arange(len(indices)), np.asarray(indices, dtype=np.int64)] = 1.0
    return out


def normalise_sex(values: pd.Series) -> pd.Series:
    """'M'/'F' from the spellings sources use (M, Male, F, Female); anything else becomes missing."""
    first = values.astype("string").str.strip().str.upper().str[:1]
    return first.where(first.isin(["M", "F"])).astype(object)


def parse_age(values: pd.Series) -> pd.Series:
    """Age in years as float; accepts '58', 58 or NIH 2017's '058Y'."""
    digits = values.astype("string").str.extract(r"(\d+(?:\.\d+)?)", expand=False)
    return pd.to_numeric(digits, errors="coerce")


def find_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursively, sorted), by extension; hidden files are skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def drop_rows(table: pd.DataFrame, keep: np.ndarray, reason: str, source: str) -> pd.DataFrame:
    """Keep rows where `keep` is true, logging how many were dropped and why."""
    dropped = int((~keep).sum())
    if dropped:
        logger.warning("%s: dropped %d of %d rows (%s)", source, dropped, len(table), reason)
    return table.loc[keep].reset_index(drop=True)
