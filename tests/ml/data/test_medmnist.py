"""Tests for the MedMNIST adapters on the shipped real files and on files generated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.data import create_dataset
from ml.data.base import Task
from ml.errors import DatasetError

CHEST_POSITIVES = {  # per split, in ChestMNIST order (from the data MANIFEST, section 2e)
    "train": [62, 57, 99, 110, 28, 26, 4, 32, 30, 22, 29, 18, 18, 9],
    "val": [9, 2, 23, 15, 3, 3, 2, 7, 2, 3, 6, 2, 2, 0],
    "test": [23, 22, 47, 36, 4, 10, 3, 1, 10, 6, 2, 12, 9, 0],
}


def write_npz(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path:
    arrays = {f"{s}_images": a for s, a in images.items()} | {f"{s}_labels": a for s, a in labels.items()}
    np.savez_compressed(path, **arrays)
    return path


def random_split_arrays(
    size: int, counts: tuple[int, int, int], label_fn, channels: int | None = None, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        shape = (n, size, size) + ((channels,) if channels else ())
        images[split] = rng.integers(0, 256, shape, dtype=np.uint8)
        labels[split] = label_fn(rng, n)
    return images, labels


# -- real files ----------------------------------------------------------------------------------------


def test_chestmnist_layout_file_from_nih(data_dir: Path) -> None:
    ds = create_dataset("chestmnist", data_dir / "chestmnist-nih1000" / "nih1000_chestmnist_format_28.npz")
    assert ds.task is Task.MULTILABEL
    assert ds.pathologies[0] == "Atelectasis" and ds.pathologies[-1] == "Hernia"
    for split, positives in CHEST_POSITIVES.items():
        part = ds.split(split)
        assert len(part) == {"train": 725, "val": 94, "test": 177}[split]
        assert part.labels.sum(axis=0).astype(int).tolist() == positives
    assert ds.metadata["name"].str.endswith(".png").all()
    image, label = ds[0]
    assert image.shape == (28, 28) and image.dtype == np.float32 and 0 <= image.min() < image.max() <= 1
    assert label.shape == (14,)


def test_chestmnist_from_folder_with_file_option(data_dir: Path) -> None:
    folder = data_dir / "chestmnist-nih1000"
    ds = create_dataset("chestmnist", folder, file="nih1000_chestmnist_format_28.npz")
    assert len(ds) == 996


def test_pneumoniamnist_real_counts(data_dir: Path) -> None:
    ds = create_dataset("pneumoniamnist", data_dir / "pneumoniamnist")
    assert ds.task is Task.BINARY and ds.pathologies == ["Pneumonia"]
    expected = {"train": (4708, 3494), "val": (524, 389), "test": (624, 390)}
    for split, (n, positives) in expected.items():
        part = ds.split(split)
        assert (len(part), int(part.labels.sum())) == (n, positives)
    assert len(ds.split("train")) - int(ds.split("train").labels.sum()) == 1214
    assert ds[0][0].shape == (28, 28)


# -- generated files -----------------------------------------------------------------------------------


def test_generic_64px_multiclass_with_names(tmp_path: Path) -> None:
    images, labels = random_split_arrays(64, (30, 5, 7), lambda rng, n: rng.integers(0, 4, (n, 1)))
    path = write_npz(tmp_path / "organamnist_64.npz", images, labels)
    ds = create_dataset("medmnist", path, labels=["a", "b", "c", "d"])
    assert ds.task is Task.MULTICLASS and ds.pathologies == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(ds.labels.sum(axis=1), 1)
    np.testing.assert_array_equal(ds.class_indices()[:30], labels["train"][:, 0])
    np.testing.assert_allclose(ds[31][0], images["val"][1] / 255.0)
    assert ds.metadata["split"].tolist() == ["train"] * 30 + ["val"] * 5 + ["test"] * 7


def test_generic_rgb_becomes_gray(tmp_path: Path) -> None:
    images, labels = random_split_arrays(28, (4, 2, 2), lambda rng, n: rng.integers(0, 2, (n, 1)), channels=3)
    path = write_npz(tmp_path / "rgb.npz", images, labels)
    ds = create_dataset("medmnist", tmp_path, file="rgb.npz")
    assert ds.task is Task.BINARY
    image = ds[0][0]
    assert image.shape == (28, 28)
    np.testing.assert_allclose(image, images["train"][0].mean(axis=-1).astype(np.uint8) / 255.0, atol=1e-6)


def test_generic_multilabel_and_forced_task(tmp_path: Path) -> None:
    images, labels = random_split_arrays(28, (6, 2, 2), lambda rng, n: rng.integers(0, 2, (n, 3)))
    ds = create_dataset("medmnist", write_npz(tmp_path / "ml.npz", images, labels))
    assert ds.task is Task.MULTILABEL and ds.pathologies == ["label_0", "label_1", "label_2"]
    images, labels = random_split_arrays(28, (6, 2, 2), lambda rng, n: np.arange(n)[:, None] % 2)
    forced = create_dataset("medmnist", write_npz(tmp_path / "b.npz", images, labels), task="multiclass")
    assert forced.task is Task.MULTICLASS and forced.labels.shape == (10, 2)
    with pytest.raises(DatasetError, match="cannot be binary"):
        create_dataset("medmnist", tmp_path / "ml.npz", task="binary")


def test_chestmnist_default_file_name_by_size(tmp_path: Path) -> None:
    images, labels = random_split_arrays(64, (3, 1, 1), lambda rng, n: rng.integers(0, 2, (n, 14)))
    write_npz(tmp_path / "chestmnist_64.npz", images, labels)
    assert create_dataset("chestmnist", tmp_path, size=64)[0][0].shape == (64, 64)
    with pytest.raises(DatasetError, match=r"chestmnist\.npz.*it holds: chestmnist_64\.npz"):
        create_dataset("chestmnist", tmp_path)


# -- broken inputs -------------------------------------------------------------------------------------


def test_missing_file_and_folder_without_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope.npz"):
        create_dataset("medmnist", tmp_path / "nope.npz")
    with pytest.raises(DatasetError, match="file="):
        create_dataset("medmnist", tmp_path)


def tiny_arrays(columns: int = 1) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return random_split_arrays(28, (3, 1, 1), lambda rng, n: rng.integers(0, 2, (n, columns)))


@pytest.mark.parametrize(
    ("name", "columns", "breaks", "message"),
    [
        ("pneumoniamnist", 1, lambda im, lb: lb.pop("val"), "missing key.*val_labels"),
        (
            "pneumoniamnist",
            1,
            lambda im, lb: im.update(train=im["train"].reshape(3, -1)),
            r"train_images must be \(N, H, W\).*\(3, 784\)",
        ),
        (
            "pneumoniamnist",
            1,
            lambda im, lb: lb.update(test=np.zeros((2, 1), dtype=np.uint8)),
            "test_images has 1 rows but test_labels has 2",
        ),
        ("chestmnist", 5, lambda im, lb: None, r"chestmnist labels must be \(N, 14\); got \(N, 5\)"),
        (
            "medmnist",
            1,
            lambda im, lb: im.update(val=im["val"].astype(np.float64)),
            "val_images must be uint8 or uint16; got float64",
        ),
    ],
)
def test_broken_files_name_the_problem(tmp_path: Path, name: str, columns: int, breaks, message: str) -> None:
    images, labels = tiny_arrays(columns)
    breaks(images, labels)
    with pytest.raises(DatasetError, match=message):
        create_dataset(name, write_npz(tmp_path / "broken.npz", images, labels))


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    images, labels = tiny_arrays()
    images["val"] = np.array([object()], dtype=object)
    with pytest.raises(DatasetError, match="cannot read .*o.npz.*allow_pickle"):
        create_dataset("medmnist", write_npz(tmp_path / "o.npz", images, labels))


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(DatasetError, match="cannot read .*x.npz"):
        create_dataset("medmnist", tmp_path / "x.npz")
