"""Class-per-folder image trees (Kaggle style): `root/<class>/*` or `root/{train,val,test}/<class>/*`.

Class names are the folder names, matched case-insensitively (`NORMAL` and `normal` are one class)
and sorted, unless `classes=` fixes the order (folders not listed are skipped). Images (png, jpg,
jpeg, bmp, tif, tiff, dcm) are found recursively. Labels are one-hot rows (multi-class, also for two
classes), or one column for `positive=` with `task="binary"`.

Splits (`split=`): "auto" takes split folders when present (train; val/valid/validation; test) and
otherwise makes a stratified split with `fractions` and `seed`; "folders" requires split folders;
"stratified" pools every image and splits anew (e.g. around Kaggle's 16-image val folder).

Rows of one group always share a split. Groups come from `patient_pattern=` (a regex whose first group
is the patient id in the file name, e.g. r"(person\\d+)_") and, with `group_duplicates=True`, from
identical images. `duplicate_hash="bytes"` (the default) hashes the file bytes: cheap, it catches exact
copies. "pixels" hashes the decoded pixels: it decodes every image and also catches the same pixels in
another container, but never a lossy re-encode. "average" (an 8x8 average hash of the decoded image, as
in perceptual-hash tools) also catches near-identical images: re-encoded, resized or lightly processed
copies; it can join a few distinct but very similar images, which only makes a group larger. Identical images filed under different classes
(conflicting labels) are dropped, every copy, with a logged count, unless `keep_conflicts=True`.

`label_authority=` names the folder (absolute, or relative to `root`) of the collection that published some
of these images, class-per-folder: a row whose copy there (`ml.data.copies`: same picture after resizing
and re-encoding) sits under another of this dataset's class names takes that class, the publisher's label
of record. It is applied after the split, so every row keeps its split; `filed_as` keeps the class the row
was filed under here. A compiled collection that re-files a published image under another class teaches
and scores the contradiction otherwise (among the rows its split keeps, the 3-class set files 122 of
Kermany et al.'s NORMAL children's images as pneumonia: docs/data-audit.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data._util import IMAGE_EXTENSIONS, choose, drop_rows, find_images, one_hot, require_dir
from ml.data.base import CXRDataset, DataPath, FileImages, Task
from ml.data.copies import published_classes
from ml.data.factory import register_dataset
from ml.data.splits import DEFAULT_FRACTIONS, group_split, merge_groups
from ml.errors import DatasetError, ImageError
from ml.imaging import read_image

logger = logging.getLogger(__name__)

SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@register_dataset("folder", description="Class-per-folder images (root/<class>/ or root/<split>/<class>/)")
def folder(
    root: Path,
    *,
    classes: Sequence[str] | None = None,
    task: str = "multiclass",
    positive: str | None = None,
    split: str = "auto",
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    patient_pattern: str | None = None,
    group_duplicates: bool = False,
    duplicate_hash: str = "bytes",
    keep_conflicts: bool = False,
    label_authority: DataPath | None = None,
) -> CXRDataset:
    """Images under `root` labelled by the folder they sit in."""
    require_dir(root, "image folder")
    choose("task", task, ["multiclass", "binary"])
    choose("split", split, ["auto", "folders", "stratified"])
    choose("duplicate_hash", duplicate_hash, ["bytes", "pixels", "average"])
    split_dirs = _split_dirs(root)
    if split == "folders" and not split_dirs:
        raise DatasetError(f"split='folders' but {root} has no train/val/test folders")
    scans = [_scan(path, name) for name, path in (split_dirs or {None: root}).items()]
    table = pd.concat(scans, ignore_index=True)
    names, class_idx = _classes(table["folder"], classes, root)
    table = drop_rows(table.assign(label=class_idx), class_idx >= 0, "class not in classes=", "folder")

    key_columns = []
    if patient_pattern is not None:
        table["patient_id"] = _patient_ids(table["name"], patient_pattern)
        key_columns.append("patient_id")
    if group_duplicates:
        table["image_hash"] = [_hash(Path(p), duplicate_hash) for p in table["path"]]
        conflict = table.groupby("image_hash")["label"].transform("nunique").to_numpy() > 1
        if not keep_conflicts:
            table = drop_rows(table, ~conflict, "identical image under several classes", "folder")
        elif conflict.any():
            logger.warning("folder: kept %d rows whose identical copies sit in other classes", conflict.sum())
        key_columns.append("image_hash")
    groups = merge_groups(*(table[c] for c in key_columns)) if key_columns else np.arange(len(table))

    onehot = one_hot(table["label"].to_numpy(), len(names))
    if split_dirs and split != "stratified":
        _warn_straddling(groups, table["split"].to_numpy())
    else:
        table["split"] = group_split(groups, onehot, fractions or DEFAULT_FRACTIONS, seed)
    if label_authority is not None:  # after the split: a relabelled row stays where it was
        filed = np.asarray(names, dtype=object)[table["label"]]
        table["label"] = _published_labels(table, names, root / label_authority)
        table["filed_as"] = filed
        onehot = one_hot(table["label"].to_numpy(), len(names))
    metadata = table.assign(**{"class": np.asarray(names, dtype=object)[table["label"]]})
    metadata = metadata.drop(columns=["folder", "label"])
    if key_columns:
        metadata["group"] = groups
    labels, pathologies, task_ = _task(onehot, names, task, positive)
    return CXRDataset("folder", pathologies, labels, task_, metadata, FileImages(metadata["path"]))


def _published_labels(table: pd.DataFrame, names: Sequence[str], authority: Path) -> np.ndarray:
    """Each row's class index, replaced by the class the collection at `authority` files the row's copy
    under, where that class is one of `names` (case-insensitive) and differs."""
    require_dir(authority, "label_authority folder")
    published = published_classes(table["path"].tolist(), authority)
    index = {n.lower(): k for k, n in enumerate(names)}
    labels = table["label"].to_numpy().copy()
    new = np.array([index.get(c, -1) if c is not None else -1 for c in published], dtype=labels.dtype)
    changed = (new >= 0) & (new != labels)
    copies = sum(c is not None for c in published)
    moves = sorted(Counter(zip(labels[changed].tolist(), new[changed].tolist(), strict=True)).items())
    logger.info("folder: %d of %d rows have a copy in %s; %d relabelled to its class there (%s)", copies,
                len(table), authority, int(changed.sum()),
                ", ".join(f"{names[a]} -> {names[b]}: {n}" for (a, b), n in moves))
    labels[changed] = new[changed]
    return labels


def _split_dirs(root: Path) -> dict[str, Path]:
    """Split name -> folder, for the sub-folders of `root` named like a split."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(path.name.lower())
        if split is not None:
            if split in found:
                both = f"{found[split].name}/ and {path.name}/"
                raise DatasetError(f"{root}: both {both} hold the {split} split; keep one")
            found[split] = path
    return found


def _scan(parent: Path, split: str | None) -> pd.DataFrame:
    """One row per image under each class folder of `parent`."""
    class_dirs = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"no class folders in {parent} (expected {parent}/<class>/<image>)")
    rows = []
    for class_dir in class_dirs:
        files = find_images(class_dir)
        if not files:
            raise DatasetError(f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        rows += [(str(f), f.name, class_dir.name, split) for f in files]
    return pd.DataFrame(rows, columns=["path", "name", "folder", "split"])


def _classes(folders: pd.Series, classes: Sequence[str] | None, root: Path) -> tuple[list[str], np.ndarray]:
    """Ordered class names and each row's class index (-1: a folder outside `classes`)."""
    keys = folders.str.lower()
    spelling = dict(zip(keys, folders, strict=True))  # a name as it appears on disk
    if classes is None:
        names = [spelling[k] for k in sorted(spelling)]
    else:
        missing = [c for c in classes if c.lower() not in spelling]
        if missing:
            found = ", ".join(sorted(set(folders)))
            raise DatasetError(f"class folder(s) {missing} not found under {root} (found: {found})")
        names = list(classes)
    index = {name.lower(): i for i, name in enumerate(names)}
    skipped = sorted(set(keys) - set(index))
    if skipped:
        logger.warning("folder: skipping folders not in classes=: %s", ", ".join(skipped))
    return names, keys.map(index).fillna(-1).astype(int).to_numpy()


def _patient_ids(names: pd.Series, pattern: str) -> pd.Series:
    """The first group of `pattern` in each file name; files that do not match are their own patient."""
    try:
        has_group = re.compile(pattern).groups >= 1
    except re.error as exc:
        raise DatasetError(f"option patient_pattern={pattern!r} is not a valid regex: {exc}") from None
    if not has_group:
        raise DatasetError(f"option patient_pattern={pattern!r} needs a (group) around the patient id")
    ids = names.str.extract(pattern, expand=False)
    if ids.isna().any():
        logger.warning("folder: %d file names do not match patient_pattern", int(ids.isna().sum()))
    return ids


def _hash(path: Path, kind: str) -> str:
    """Digest of a file's bytes, or of its decoded pixels and shape."""
    if kind == "bytes":
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    try:
        pixels = read_image(path)
    except ImageError as exc:
        raise DatasetError(f"cannot hash the pixels of {path}: {exc}") from None
    if kind == "average":
        return average_hash(pixels)
    return hashlib.blake2b(str(pixels.shape).encode() + pixels.tobytes(), digest_size=16).hexdigest()


def average_hash(image: np.ndarray, size: int = 8) -> str:
    """Average hash: the image area-averaged to size x size, one bit per cell (above the mean), as hex.

    Copies that differ by re-encoding, resizing or small intensity changes share it. (The idea of the
    aHash of perceptual-hash libraries; written here on OpenCV's area resize.)
    """
    import cv2

    small = cv2.resize(np.asarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)
    bits = (small > small.mean()).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{size * size // 4}x}"


def _warn_straddling(groups: np.ndarray, splits: np.ndarray) -> None:
    """The split folders are given: only report groups (patients, duplicates) found in several."""
    straddling = int((pd.Series(splits).groupby(groups).nunique() > 1).sum())
    if straddling:
        logger.warning("folder: %d groups have images in more than one split folder", straddling)


def _task(
    onehot: np.ndarray, names: list[str], task: str, positive: str | None
) -> tuple[np.ndarray, list[str], Task]:
    """Multi-class one-hot labels, or one binary column for the `positive` class."""
    if task == "multiclass":
        return onehot, names, Task.MULTICLASS
    lowered = [n.lower() for n in names]
    if positive is None or positive.lower() not in lowered:
        raise DatasetError(f"task='binary' needs positive= naming one of {names}; got {positive!r}")
    column = lowered.index(positive.lower())
    return onehot[:, [column]], [names[column]], Task.BINARY
