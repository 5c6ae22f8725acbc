"""The dataset contract every adapter fulfils.

A `CXRDataset` holds all rows of one source (every split), ordered `pathologies`, a float32 label
matrix where 1/0 are known and NaN is unknown or uncertain, the task type, and a metadata frame aligned
row for row (always `split`; `patient_id`, `view`, `age`, `sex` where the source has them). Images are
read lazily through an `ImageSource` and returned as float32 HxW arrays scaled to [0, 1] according to
their real bit depth. (Semantics follow torchxrayvision's datasets; the code is our own.)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd

from ml.errors import DatasetError

METADATA_COLUMNS = ("split", "patient_id", "view", "age", "sex")


class NamesPath:
    """Marks an adapter option that names a file or folder (`DataPath`).

    A service that registers datasets for others finds these options in the adapter's signature and
    holds them to its data roots exactly as it holds the dataset's own path, then hands the adapter the
    real path it checked.
    """

    def __repr__(self) -> str:
        return "NamesPath()"


# An option naming a file or folder: absolute, or relative to the dataset's own folder (`root`).
DataPath = Annotated[str | Path, NamesPath()]


class Task(str, enum.Enum):
    MULTILABEL = "multilabel"  # independent sigmoid per pathology
    BINARY = "binary"  # one pathology, sigmoid
    MULTICLASS = "multiclass"  # exactly one class per row, softmax; labels are one-hot

    def __str__(self) -> str:
        return self.value


class ImageSource:
    """Reads image `i` as float32 HxW in [0, 1]."""

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def take(self, indices: np.ndarray) -> ImageSource:
        raise NotImplementedError


class ArrayImages(ImageSource):
    """Images held in memory as an (N, H, W) uint8 or uint16 array (MedMNIST)."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim == 4 and array.shape[-1] in (1, 3):
            array = array.mean(axis=-1).astype(array.dtype) if array.shape[-1] == 3 else array[..., 0]
        if array.ndim != 3:
            raise DatasetError(f"image array must be (N, H, W) or (N, H, W, C); got shape {array.shape}")
        if array.dtype not in (np.uint8, np.uint16):
            raise DatasetError(f"image array must be uint8 or uint16; got {array.dtype}")
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def load(self, i: int) -> np.ndarray:
        return self.array[i].astype(np.float32) / float(np.iinfo(self.array.dtype).max)

    def take(self, indices: np.ndarray) -> ArrayImages:
        return ArrayImages(self.array[indices])


class FileImages(ImageSource):
    """Images read from files on demand (PNG, JPEG, DICOM) through `ml.imaging.read_image`."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        from ml.imaging import read_image

        return read_image(self.paths[i])

    def take(self, indices: np.ndarray) -> FileImages:
        return FileImages([self.paths[i] for i in indices])


@dataclass
class CXRDataset:
    """All rows of one dataset; `subset`/`split` give views of some rows."""

    name: str
    pathologies: list[str]
    labels: np.ndarray  # float32 (N, L): 1 positive, 0 negative, NaN unknown
    task: Task
    metadata: pd.DataFrame  # N rows, at least a `split` column
    images: ImageSource

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.float32)
        n = len(self.images)
        if self.labels.ndim != 2 or self.labels.shape != (n, len(self.pathologies)):
            raise DatasetError(
                f"{self.name}: labels must have shape ({n}, {len(self.pathologies)}); got {self.labels.shape}"
            )
        if len(self.metadata) != n:
            raise DatasetError(f"{self.name}: metadata has {len(self.metadata)} rows for {n} images")
        if "split" not in self.metadata.columns:
            raise DatasetError(f"{self.name}: metadata needs a 'split' column")
        self.metadata = self.metadata.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images.load(i), self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.pathologies)

    def splits(self) -> list[str]:
        return sorted(self.metadata["split"].dropna().unique().tolist())

    def subset(self, indices: Sequence[int] | np.ndarray) -> CXRDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return CXRDataset(
            name=self.name,
            pathologies=list(self.pathologies),
            labels=self.labels[idx],
            task=self.task,
            metadata=self.metadata.iloc[idx].reset_index(drop=True),
            images=self.images.take(idx),
        )

    def split(self, name: str) -> CXRDataset:
        """Rows whose `split` is `name`; a clear error if the dataset has no such split."""
        mask = (self.metadata["split"] == name).to_numpy()
        if not mask.any():
            raise DatasetError(f"{self.name}: no rows in split '{name}' (splits: {', '.join(self.splits())})")
        return self.subset(np.flatnonzero(mask))

    def class_indices(self) -> np.ndarray:
        """For multi-class data: the class index of each row."""
        if self.task is not Task.MULTICLASS:
            raise DatasetError(f"{self.name}: class indices exist only for multi-class data")
        return np.nan_to_num(self.labels).argmax(axis=1)
