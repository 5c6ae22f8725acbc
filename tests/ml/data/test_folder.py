"""Tests for the class-per-folder adapter on the shipped Kermany sample, copied here into each layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.data import create_dataset
from ml.data.base import Task
from ml.errors import DatasetError


@pytest.fixture
def kermany(data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of data/kermany-sample (12 NORMAL + 12 PNEUMONIA real JPEGs)."""
    return Path(shutil.copytree(data_dir / "kermany-sample", tmp_path / "kermany"))


def test_class_layout_gives_a_stratified_split(data_dir: Path) -> None:
    ds = create_dataset("folder", data_dir / "kermany-sample", seed=0)
    assert len(ds) == 24 and ds.task is Task.MULTICLASS and ds.pathologies == ["NORMAL", "PNEUMONIA"]
    np.testing.assert_array_equal(ds.labels.sum(axis=1), 1)
    assert (ds.metadata["class"] == "PNEUMONIA").sum() == 12
    train = ds.split("train")
    assert 7 <= int(train.labels[:, 0].sum()) <= 10 and 7 <= int(train.labels[:, 1].sum()) <= 10
    again = create_dataset("folder", data_dir / "kermany-sample", seed=0)
    assert again.metadata["split"].tolist() == ds.metadata["split"].tolist()
    image, label = ds[0]
    assert image.shape == (224, 224) and label.tolist() == [1.0, 0.0]


def test_split_layout_with_mixed_case_class_names(kermany: Path, tmp_path: Path) -> None:
    root = tmp_path / "splits"
    for cls, dst in (("NORMAL", "NORMAL"), ("PNEUMONIA", "Pneumonia")):
        files = sorted((kermany / cls).iterdir())
        for split, part in (("train", files[:8]), ("val", files[8:10]), ("test", files[10:])):
            folder = root / split / (dst.lower() if split == "test" else dst)
            folder.mkdir(parents=True)
            for f in part:
                shutil.copy(f, folder / f.name)
    ds = create_dataset("folder", root)
    assert ds.pathologies == ["NORMAL", "Pneumonia"]
    assert {s: len(ds.split(s)) for s in ("train", "val", "test")} == {"train": 16, "val": 4, "test": 4}
    assert ds.split("test").labels.sum(axis=0).tolist() == [2.0, 2.0]
    pooled = create_dataset("folder", root, split="stratified", fractions={"train": 0.5, "test": 0.5})
    assert set(pooled.splits()) == {"train", "test"}


def test_classes_order_and_binary_task(kermany: Path) -> None:
    ds = create_dataset("folder", kermany, classes=["pneumonia", "normal"])
    assert ds.pathologies == ["pneumonia", "normal"]
    assert ds.labels[ds.metadata["class"].to_numpy() == "pneumonia", 0].all()
    binary = create_dataset("folder", kermany, task="binary", positive="Pneumonia")
    assert binary.task is Task.BINARY and binary.pathologies == ["PNEUMONIA"] and binary.labels.sum() == 12
    with pytest.raises(DatasetError, match="positive="):
        create_dataset("folder", kermany, task="binary")


def test_conflicting_duplicate_is_dropped_or_kept_together(
    kermany: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copied = sorted((kermany / "NORMAL").iterdir())[0]
    shutil.copy(copied, kermany / "PNEUMONIA" / "copy.jpeg")
    with caplog.at_level(logging.WARNING):
        ds = create_dataset("folder", kermany, group_duplicates=True)
    assert len(ds) == 23 and copied.name not in set(ds.metadata["name"])
    assert "dropped 2 of 25 rows" in caplog.text
    kept = create_dataset("folder", kermany, group_duplicates=True, keep_conflicts=True, seed=3)
    pair = kept.metadata[kept.metadata["name"].isin([copied.name, "copy.jpeg"])]
    assert len(pair) == 2 and pair["split"].nunique() == 1 and pair["group"].nunique() == 1
    plain = create_dataset("folder", kermany)  # without grouping the duplicate stays, unlinked
    assert len(plain) == 25


def test_same_class_duplicates_share_a_split_across_seeds(kermany: Path) -> None:
    source = sorted((kermany / "PNEUMONIA").iterdir())[3]
    for i in range(3):
        shutil.copy(source, kermany / "PNEUMONIA" / f"dup{i}.jpeg")
    for seed in range(5):
        ds = create_dataset("folder", kermany, group_duplicates=True, seed=seed)
        copies = ds.metadata[ds.metadata["name"].isin([source.name, "dup0.jpeg", "dup1.jpeg", "dup2.jpeg"])]
        assert len(copies) == 4 and copies["split"].nunique() == 1


def test_pixel_hash_finds_the_same_pixels_in_another_container(kermany: Path) -> None:
    source = sorted((kermany / "NORMAL").iterdir())[0]
    with Image.open(source) as im:
        im.convert("L").save(kermany / "NORMAL" / "a.png")
        im.convert("L").save(kermany / "NORMAL" / "b.bmp")
    for kind, same in (("bytes", False), ("pixels", True)):
        ds = create_dataset("folder", kermany, group_duplicates=True, duplicate_hash=kind)
        groups = ds.metadata.set_index("name")["group"]
        assert bool(groups["a.png"] == groups["b.bmp"]) is same


def test_average_hash_groups_a_resized_reencoded_copy_but_not_other_images(kermany: Path) -> None:
    source = sorted((kermany / "NORMAL").iterdir())[0]
    with Image.open(source) as im:  # a near-identical copy: half size, lossy JPEG at another quality
        im.convert("L").resize((112, 112)).save(kermany / "NORMAL" / "near.jpeg", quality=60)
    for kind, same in (("pixels", False), ("average", True)):
        ds = create_dataset("folder", kermany, group_duplicates=True, duplicate_hash=kind)
        groups = ds.metadata.set_index("name")["group"]
        assert bool(groups[source.name] == groups["near.jpeg"]) is same
        assert ds.metadata["group"].nunique() == len(ds) - (1 if same else 0)  # nothing else merged


def test_average_hash_is_a_stable_64_bit_digest() -> None:
    from ml.data.folder import average_hash

    gradient = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    assert average_hash(gradient) == "0f" * 8  # right half above the mean in every row
    assert average_hash(gradient * 0.5 + 0.1) == average_hash(gradient)  # brightness/contrast invariant
    assert average_hash(gradient.T) != average_hash(gradient)


def test_patient_pattern_keeps_a_patient_in_one_split(data_dir: Path) -> None:
    for seed in range(5):
        ds = create_dataset("folder", data_dir / "kermany-sample", patient_pattern=r"(person\d+)_", seed=seed)
        person = ds.metadata[ds.metadata["patient_id"] == "person1003"]
        assert len(person) == 2 and person["split"].nunique() == 1


def test_broken_trees(kermany: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere"):
        create_dataset("folder", tmp_path / "nowhere")
    (kermany / "TUBERCULOSIS").mkdir()
    with pytest.raises(DatasetError, match="class folder .*TUBERCULOSIS holds no images"):
        create_dataset("folder", kermany)
    (kermany / "TUBERCULOSIS").rmdir()
    with pytest.raises(DatasetError, match=r"class folder\(s\) \['covid'\] not found"):
        create_dataset("folder", kermany, classes=["normal", "covid"])
    with pytest.raises(DatasetError, match="split='folders'"):
        create_dataset("folder", kermany, split="folders")
    with pytest.raises(DatasetError, match="needs a \\(group\\)"):
        create_dataset("folder", kermany, patient_pattern=r"person\d+")
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(sorted((kermany / "NORMAL").iterdir())[0], flat / "x.jpeg")
    with pytest.raises(DatasetError, match=r"no class folders in .*flat"):
        create_dataset("folder", flat)


def _compiled(kermany: Path, root: Path) -> Path:
    """A 3-class collection compiled partly from the Kermany sample, re-encoded at another size: four NORMAL
    images filed as normal, four as pneumonia (the contradiction), four PNEUMONIA images as pneumonia, and
    synthetic tuberculosis and normal images with no copy anywhere."""
    from tests.ml.data.merged_layout import recoded_copy

    normal, pneumonia = sorted((kermany / "NORMAL").iterdir()), sorted((kermany / "PNEUMONIA").iterdir())
    for k, f in enumerate(normal[:8]):
        recoded_copy(f, root / ("normal" if k < 4 else "pneumonia") / f"n{k}.jpg")
    for k, f in enumerate(pneumonia[:4]):
        recoded_copy(f, root / "pneumonia" / f"p{k}.jpg")
    rng = np.random.default_rng(0)
    for cls in ("tuberculosis", "normal"):
        for k in range(6):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (96, 96), dtype=np.uint8)).save(root / cls / f"s{k}.png")
    return root


def test_label_authority_gives_copies_the_publishers_class_and_keeps_every_split(kermany: Path,
                                                                               tmp_path: Path) -> None:
    root = _compiled(kermany, tmp_path / "three")
    options = {"split": "stratified", "fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 3}
    filed = create_dataset("folder", root, **options)
    ds = create_dataset("folder", root, label_authority=kermany, **options)
    assert ds.metadata["split"].tolist() == filed.metadata["split"].tolist()  # relabelled after the split
    meta = ds.metadata.set_index("name")
    relabelled = meta[meta["class"] != meta["filed_as"]]
    assert sorted(relabelled.index) == ["n4.jpg", "n5.jpg", "n6.jpg", "n7.jpg"]  # NORMAL filed as pneumonia
    assert set(relabelled["class"]) == {"normal"} and set(relabelled["filed_as"]) == {"pneumonia"}
    assert (meta.loc[[f"p{k}.jpg" for k in range(4)], "class"] == "pneumonia").all()  # agreement: unchanged
    assert "filed_as" not in filed.metadata
    names = ds.pathologies
    np.testing.assert_array_equal(ds.labels.argmax(axis=1), [names.index(c) for c in ds.metadata["class"]])
    assert int(ds.labels[:, names.index("pneumonia")].sum()) == 4
    # a relative authority is read from the root; an absolute one as it is
    rel = create_dataset("folder", root, label_authority="../kermany", **options)
    assert rel.metadata["class"].tolist() == ds.metadata["class"].tolist()


def test_label_authority_follows_only_an_unambiguous_class_this_dataset_has(kermany: Path, tmp_path: Path) -> None:
    root = _compiled(kermany, tmp_path / "three")
    authority = Path(shutil.copytree(kermany, tmp_path / "authority"))
    moved = sorted((authority / "NORMAL").iterdir())[4]  # published as a class the dataset does not have
    (authority / "OTHER").mkdir()
    shutil.move(moved, authority / "OTHER" / moved.name)
    contradicted = sorted((authority / "NORMAL").iterdir())[4]  # published under both classes
    shutil.copy(contradicted, authority / "PNEUMONIA" / contradicted.name)
    meta = create_dataset("folder", root, label_authority=authority).metadata.set_index("name")
    assert meta.loc["n4.jpg", "class"] == "pneumonia" and meta.loc["n5.jpg", "class"] == "pneumonia"
    assert (meta.loc[["n6.jpg", "n7.jpg"], "class"] == "normal").all()
    with pytest.raises(DatasetError, match="label_authority folder not found"):
        create_dataset("folder", root, label_authority=tmp_path / "nowhere")
    empty = tmp_path / "empty" / "NORMAL"
    empty.mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no images"):
        create_dataset("folder", root, label_authority=empty.parent)
