"""NIH ChestX-ray14: the `Data_Entry_2017*.csv(.gz)` table and its PNG images.

The table's `Finding Labels` (pipe-separated; `No Finding` = all zero) become the 14 labels in
ChestX-ray14 order. Finding names outside the 14 (e.g. in a relabelled table) are ignored with one
logged warning that lists them, so a newer table still trains on the known labels. Images are found
flat (`root/images/*.png` or `root/*.png`) or as the download unpacks (`root/images_001/images/...`);
rows whose image is absent are dropped with a logged count.

Splits (`split=`): `official` (`train_val_list.txt` / `test_list.txt`, train_val cut into train/val by
patient), `chexnet` (CheXNet `train_list.txt` / `val_list.txt` / `test_list.txt`, membership only:
labels always come from the table), `patient` (patient-disjoint fractions), or `auto` (the default:
official lists if present, else CheXNet lists, else a patient split). Rows in no list are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data._util import (
    CHESTXRAY14_LABELS,
    choose,
    drop_rows,
    normalise_sex,
    parse_age,
    read_table,
    require_columns,
)
from ml.data.base import CXRDataset, DataPath, FileImages, Task
from ml.data.factory import register_dataset
from ml.data.splits import DEFAULT_FRACTIONS, patient_split
from ml.errors import DatasetError

logger = logging.getLogger(__name__)

COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position")
OFFICIAL_LISTS = {"trainval": "train_val_list.txt", "test": "test_list.txt"}
CHEXNET_LISTS = {"train": "train_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
SPLIT_LISTS = {"official": OFFICIAL_LISTS, "chexnet": CHEXNET_LISTS}


@register_dataset("nih", description="NIH ChestX-ray14 (Data_Entry_2017 CSV + PNGs), 14 labels, multi-label")
def nih(
    root: Path,
    *,
    csv: DataPath | None = None,
    split: str = "auto",
    split_dir: DataPath | None = None,
    fractions: Mapping[str, float] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    views: Sequence[str] | None = None,
) -> CXRDataset:
    """NIH ChestX-ray14 under `root`; `views=["PA"]` keeps only those View Positions.

    `csv` (the table) and `split_dir` (the folder of split lists) are absolute or relative to `root`.
    """
    choose("split", split, ["auto", "official", "chexnet", "patient"])
    table_path = _find_table(root, csv)
    table = read_table(table_path, "NIH table")
    require_columns(table, COLUMNS, table_path)
    if views is not None:
        wanted = table["View Position"].astype(str).str.upper().isin([v.upper() for v in views])
        table = drop_rows(table, wanted.to_numpy(), f"View Position not in {list(views)}", "nih")

    images = _index_images(root)
    paths = table["Image Index"].map(images)
    table = drop_rows(table.assign(path=paths), paths.notna().to_numpy(), "image file not found", "nih")

    labels = _parse_findings(table["Finding Labels"])
    metadata = pd.DataFrame(
        {
            "patient_id": table["Patient ID"].astype(str),
            "view": table["View Position"].astype(str).str.upper(),
            "age": parse_age(table["Patient Age"]),
            "sex": normalise_sex(table["Patient Gender"]),
            "name": table["Image Index"].astype(str),
            "path": table["path"].astype(str),
        }
    )
    lists_dir = root / split_dir if split_dir is not None else root  # an absolute split_dir replaces root
    metadata["split"] = _splits(metadata, labels, split, lists_dir, fractions, val_fraction, seed)
    keep = metadata["split"].notna().to_numpy()
    metadata = drop_rows(metadata, keep, f"not in the {split} split lists", "nih")
    return CXRDataset(
        "nih", list(CHESTXRAY14_LABELS), labels[keep], Task.MULTILABEL, metadata, FileImages(metadata["path"])
    )


def _find_table(root: Path, csv: DataPath | None) -> Path:
    if csv is not None:
        return root / csv  # an absolute csv replaces root
    if not root.is_dir():
        raise DatasetError(f"NIH folder not found: {root}")
    found = sorted(root.glob("Data_Entry_2017*.csv*")) + sorted(root.glob("*/Data_Entry_2017*.csv*"))
    if not found:
        raise DatasetError(f"no Data_Entry_2017*.csv or .csv.gz in {root} or its subfolders; pass csv=")
    if len(found) > 1:
        logger.info("several NIH tables found; using %s", found[0])
    return found[0]


def _index_images(root: Path) -> dict[str, Path]:
    """File name -> path over the flat and the as-downloaded layouts."""
    folders = [root, root / "images", *sorted(root.glob("images_*/images")), *sorted(root.glob("images_*"))]
    index: dict[str, Path] = {}
    for folder in folders:
        for path in folder.glob("*.png"):
            index.setdefault(path.name, path)
    if not index:
        raise DatasetError(
            f"no NIH images (*.png) in {root}, {root / 'images'} or {root / 'images_*' / 'images'}"
        )
    return index


def _parse_findings(findings: pd.Series) -> np.ndarray:
    """(N, 14) float32: 1 where the finding is listed; NaN rows where the field is blank."""
    text = findings.fillna("").astype(str).str.strip()
    dummies = text.str.get_dummies(sep="|")
    unknown = sorted(set(dummies.columns) - set(CHESTXRAY14_LABELS) - {"No Finding"})
    if unknown:
        logger.warning("NIH table: ignoring finding names outside the 14 labels: %s", ", ".join(unknown))
    labels = dummies.reindex(columns=CHESTXRAY14_LABELS, fill_value=0).to_numpy(dtype=np.float32)
    labels[(text == "").to_numpy()] = np.nan
    return labels


def _read_list(path: Path, split: str) -> set[str]:
    """Image names in a split list (first token per line; CheXNet lines also carry labels)."""
    if not path.is_file():
        raise DatasetError(f"NIH split list not found: {path} (needed by split='{split}'; set split_dir=)")
    return {line.split()[0] for line in path.read_text().splitlines() if line.strip()}


def _has_lists(folder: Path, lists: Mapping[str, str]) -> bool:
    return all((folder / file).is_file() for file in lists.values())


def _splits(
    metadata: pd.DataFrame,
    labels: np.ndarray,
    split: str,
    lists_dir: Path,
    fractions: Mapping[str, float] | None,
    val_fraction: float,
    seed: int,
) -> np.ndarray:
    """A split name per row (None for rows in no list)."""
    if split == "auto":
        present = (name for name, lists in SPLIT_LISTS.items() if _has_lists(lists_dir, lists))
        split = next(present, "patient")
        logger.info("nih: split='auto' chose '%s'", split)
    if split == "patient":
        return patient_split(metadata["patient_id"], fractions or DEFAULT_FRACTIONS, seed, labels)
    out = np.full(len(metadata), None, dtype=object)
    for name, file in SPLIT_LISTS[split].items():
        out[metadata["name"].isin(_read_list(lists_dir / file, split)).to_numpy()] = name
    trainval = out == "trainval"
    if trainval.any():
        cut = {"train": 1.0 - val_fraction, "val": val_fraction}
        out[trainval] = patient_split(metadata["patient_id"][trainval], cut, seed, labels[trainval])
    return out
