"""MedMNIST 2D `.npz` files: `{train,val,test}_images` (N, H, W) or (N, H, W, 3) uint8 and
`{train,val,test}_labels` (N, L), at any size (28, 64, 128, 224).

The official splits are the file's own. Optional `{split}_names` arrays (file names, as in our
NIH-in-ChestMNIST-layout file) become the metadata column `name`. RGB files are turned into grayscale
by `ArrayImages`. Files are loaded with `allow_pickle=False`, one split at a time into one preallocated
array, so a 224 px file costs little more than its own size in memory.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data._util import CHESTXRAY14_LABELS, choose, one_hot
from ml.data.base import ArrayImages, CXRDataset, DataPath, Task
from ml.data.factory import register_dataset
from ml.errors import DatasetError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@register_dataset("medmnist", description="Any 2D MedMNIST .npz (train/val/test keys); task from the labels")
def medmnist(
    root: Path,
    *,
    file: DataPath | None = None,
    labels: Sequence[str] | None = None,
    task: str | None = None,
    name: str = "medmnist",
) -> CXRDataset:
    """Any 2D MedMNIST file; `root` is the .npz itself or its folder with `file=`.

    The task follows the labels unless `task` forces it: (N, 1) with values 0/1 is binary, (N, 1) with
    more values is multi-class (one-hot rows), (N, L>1) of 0/1 is multi-label. `labels` names the
    classes (multi-class), the columns (multi-label) or, for binary, the negative and positive class.
    """
    path = resolve_npz(root, [file] if file else [])
    images, raw, split, names = load_npz(path)
    forced = Task(choose("task", task, [t.value for t in Task])) if task else None
    task_ = infer_task(raw, forced, path)
    matrix, pathologies = _label_matrix(raw, task_, labels, path)
    return _dataset(name, pathologies, matrix, task_, split, names, images)


@register_dataset("chestmnist", description="ChestMNIST (NIH ChestX-ray14, 28-224 px), 14 labels")
def chestmnist(root: Path, *, size: int | None = None, file: DataPath | None = None) -> CXRDataset:
    """ChestMNIST, or any file in its layout (14 label columns in ChestX-ray14 order)."""
    return _subset("chestmnist", root, size, file, list(CHESTXRAY14_LABELS), Task.MULTILABEL)


@register_dataset("pneumoniamnist", description="PneumoniaMNIST (Kermany pediatric CXR), normal vs pneumonia")
def pneumoniamnist(root: Path, *, size: int | None = None, file: DataPath | None = None) -> CXRDataset:
    """PneumoniaMNIST: binary, 1 = pneumonia."""
    return _subset("pneumoniamnist", root, size, file, ["Pneumonia"], Task.BINARY)


def _subset(
    stem: str, root: Path, size: int | None, file: DataPath | None, pathologies: list[str], task: Task
) -> CXRDataset:
    """A named MedMNIST subset: its default file names, its label columns and its task."""
    path = resolve_npz(root, [file] if file else default_files(stem, size))
    images, raw, split, names = load_npz(path)
    if raw.shape[1] != len(pathologies):
        raise DatasetError(f"{path}: {stem} labels must be (N, {len(pathologies)}); got (N, {raw.shape[1]})")
    infer_task(raw, task, path)
    return _dataset(stem, pathologies, raw, task, split, names, images)


def default_files(stem: str, size: int | None) -> list[str]:
    """MedMNIST file names: `stem.npz` for 28 px, `stem_{size}.npz` otherwise."""
    if size is None:
        return [f"{stem}.npz", f"{stem}_28.npz"]
    return ([f"{stem}.npz"] if size == 28 else []) + [f"{stem}_{size}.npz"]


def resolve_npz(root: Path, candidates: Sequence[str | Path]) -> Path:
    """`root` itself when it is a file, else the first candidate file inside the folder `root`."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise DatasetError(f"MedMNIST file or folder not found: {root}")
    if not candidates:
        raise DatasetError(f"{root} is a folder: give the .npz path as root or its name as file=")
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    found = sorted(p.name for p in root.glob("*.npz"))
    holds = ", ".join(found) or "no .npz file"
    raise DatasetError(f"none of {', '.join(map(str, candidates))} found in {root} (it holds: {holds})")


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Grayscale images (N, H, W), raw labels (N, L), split names (N,) and names (N,) or None."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path} holds a single array, not an .npz archive with MedMNIST keys")
        with npz:
            return _read_arrays(npz, path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # ValueError also covers object arrays, which allow_pickle=False refuses.
        raise DatasetError(f"cannot read {path} as a MedMNIST .npz: {exc}") from None


def _read_arrays(
    npz: np.lib.npyio.NpzFile, path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    keys = set(npz.files)
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in keys]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)}; found {', '.join(sorted(keys))}")
    raw = [_labels_2d(npz[f"{s}_labels"], f"{s}_labels", path) for s in SPLITS]
    if len({r.shape[1] for r in raw}) != 1:
        raise DatasetError(f"{path}: label columns differ between splits: {[r.shape for r in raw]}")
    counts = [len(r) for r in raw]
    ends = np.cumsum(counts)
    images: np.ndarray | None = None
    for s, count, end in zip(SPLITS, counts, ends, strict=True):
        gray = _gray(npz[f"{s}_images"], count, f"{s}_images", path)
        if images is None:  # one array for all splits, filled split by split
            images = np.empty((ends[-1], *gray.shape[1:]), dtype=gray.dtype)
        if gray.shape[1:] != images.shape[1:]:
            shapes = f"{s}_images are {gray.shape[1:]}, train_images {images.shape[1:]}"
            raise DatasetError(f"{path}: image sizes differ: {shapes}")
        images[end - count : end] = gray
    names = _names(npz, counts) if all(f"{s}_names" in keys for s in SPLITS) else None
    split = np.repeat(np.array(SPLITS, dtype=object), counts)
    return images, np.concatenate(raw).astype(np.float64), split, names


def infer_task(raw: np.ndarray, forced: Task | None, path: Path) -> Task:
    """The task the label values suggest, or `forced` when the values allow it."""
    values = np.unique(raw[~np.isnan(raw)])
    zero_one = bool(np.isin(values, [0, 1]).all())
    if raw.shape[1] > 1:
        natural, allowed = Task.MULTILABEL, {Task.MULTILABEL} if zero_one else set()
    elif zero_one:
        natural, allowed = Task.BINARY, set(Task)
    else:
        natural, allowed = Task.MULTICLASS, {Task.MULTICLASS}
    task = forced or natural
    if task not in allowed:
        shown = values[:10].tolist()
        raise DatasetError(f"{path}: labels of shape {raw.shape} with values {shown} cannot be {task}")
    return task


def _label_matrix(
    raw: np.ndarray, task: Task, names: Sequence[str] | None, path: Path
) -> tuple[np.ndarray, list[str]]:
    if task is Task.MULTICLASS:
        if (raw < 0).any() or (raw % 1 != 0).any():
            raise DatasetError(f"{path}: multi-class labels must be class indices 0..K-1")
        n_classes = len(names) if names else int(raw.max()) + 1
        if raw.max() >= n_classes:
            raise DatasetError(f"{path}: label value {int(raw.max())} but only {n_classes} class names given")
        return one_hot(raw[:, 0], n_classes), list(names or [f"class_{i}" for i in range(n_classes)])
    if task is Task.BINARY:
        if names and len(names) not in (1, 2):
            raise DatasetError(f"{path}: labels= for a binary task takes 1 name or 2 (negative, positive)")
        return raw, [names[-1]] if names else ["class_1"]
    if names and len(names) != raw.shape[1]:
        raise DatasetError(f"labels= has {len(names)} names for {raw.shape[1]} label columns in {path}")
    return raw, list(names or [f"label_{i}" for i in range(raw.shape[1])])


def _labels_2d(labels: np.ndarray, key: str, path: Path) -> np.ndarray:
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {key} must be numeric (N,) or (N, L); got {labels.shape} {labels.dtype}")
    return labels


def _gray(images: np.ndarray, count: int, key: str, path: Path) -> np.ndarray:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DatasetError(f"{path}: {key} must be (N, H, W) or (N, H, W, 3); got {images.shape}")
    if len(images) != count:
        raise DatasetError(f"{path}: {key} has {len(images)} rows but {key[:-7]}_labels has {count}")
    if images.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"{path}: {key} must be uint8 or uint16; got {images.dtype}")
    return ArrayImages(images).array


def _names(npz: np.lib.npyio.NpzFile, counts: list[int]) -> np.ndarray | None:
    names = [np.asarray(npz[f"{s}_names"]).astype(str) for s in SPLITS]
    if [len(n) for n in names] != counts:
        logger.warning("*_names arrays do not match the image counts; ignoring them")
        return None
    return np.concatenate(names)


def _dataset(
    name: str,
    pathologies: list[str],
    labels: np.ndarray,
    task: Task,
    split: np.ndarray,
    names: np.ndarray | None,
    images: np.ndarray,
) -> CXRDataset:
    index_in_split = np.concatenate([np.arange((split == s).sum()) for s in SPLITS])
    metadata = pd.DataFrame({"split": split, "index": index_in_split})
    if names is not None:
        metadata["name"] = names
    return CXRDataset(name, pathologies, labels, task, metadata, ArrayImages(images))
