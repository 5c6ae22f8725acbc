"""Copies of one image across collections (`ml.data.copies`): the fingerprint on real Kermany JPEGs re-encoded
the way another collection stores them, and the rule that decides which copy a pooled dataset keeps."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ml.data.copies import COPY_CORRELATION, copy_pairs, fingerprints, resolve_copies, rows_to_drop
from ml.errors import DatasetError
from tests.ml.data.merged_layout import recoded_copy


@pytest.fixture(scope="module")
def kermany(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "kermany-sample").rglob("*.jpeg"))


def test_a_copy_stored_another_way_matches_and_distinct_radiographs_do_not(kermany: list[Path],
                                                                           tmp_path: Path) -> None:
    copies = [recoded_copy(p, tmp_path / f"copy-{k}.jpg") for k, p in enumerate(kermany)]
    a, b = fingerprints(kermany), fingerprints(copies)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    similarity = a @ b.T
    assert np.diag(similarity).min() >= COPY_CORRELATION  # every image finds its copy
    distinct = [similarity[i, j] for i, j in itertools.permutations(range(len(kermany)), 2)]
    assert max(distinct) < COPY_CORRELATION  # 24 children's radiographs, alike as they are, never match
    assert sorted(map(tuple, copy_pairs(a, b))) == [(k, k) for k in range(len(kermany))]


def test_a_flat_image_is_a_copy_of_nothing(tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(flat)
    assert not fingerprints([flat]).any()
    assert len(copy_pairs(fingerprints([flat, flat]), fingerprints([flat]))) == 0


def test_an_unreadable_file_is_a_dataset_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="bad.png"):
        fingerprints([bad])


def test_pairs_are_the_same_whatever_the_chunk() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(11, 16)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = np.concatenate([a[[2, 7, 7]], -a[:3]])
    whole = sorted(map(tuple, copy_pairs(a, b, chunk=100)))
    assert whole == sorted(map(tuple, copy_pairs(a, b, chunk=2))) == [(2, 0), (7, 1), (7, 2)]


def _unit(k: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[k] = 1.0
    return v


def _drops(rows: list[tuple[str, str, int]], authority: dict[str, int]) -> list[tuple[int, str]]:
    """rows: (source, split, image id); rows with one id are copies of one image."""
    meta = pd.DataFrame([(s, sp) for s, sp, _ in rows], columns=["source", "split"])
    prints = np.stack([_unit(i) for _, _, i in rows])
    dropped = rows_to_drop(meta, prints, authority)
    return list(zip(dropped["index"], dropped["copy_of"], strict=True))


AUTHORITY = {"kermany": 2, "nih": 1, "cxr3class": 0}


def test_a_training_or_validation_copy_of_a_later_split_goes_whatever_its_collection() -> None:
    rows = [("kermany", "test", 0), ("cxr3class", "train", 0),  # the 3-class copy of a Kermany test image
            ("kermany", "train", 1), ("cxr3class", "test", 1),  # Kermany's copy of a 3-class test image
            ("kermany", "val", 2), ("cxr3class", "train", 2),
            ("nih", "val", 3), ("cxr3class", "test", 3)]
    assert _drops(rows, AUTHORITY) == [(1, "kermany test"), (2, "cxr3class test"), (5, "kermany val"),
                                       (6, "cxr3class test")]


def test_copies_in_one_training_split_keep_the_publishing_collection_s_and_test_copies_both_stay() -> None:
    rows = [("cxr3class", "train", 0), ("kermany", "train", 0),
            ("cxr3class", "val", 1), ("nih", "val", 1),
            ("kermany", "test", 2), ("cxr3class", "test", 2),  # two benchmarks, each kept whole
            ("cxr3class", "train", 3), ("cxr3class", "train", 3),  # within one collection: its own business
            ("kermany", "train", 4), ("nih", "train", 5)]  # no copies
    assert _drops(rows, AUTHORITY) == [(0, "kermany train"), (2, "nih val")]


def test_an_image_in_three_collections_keeps_its_test_copy_only() -> None:
    rows = [("nih", "train", 0), ("kermany", "val", 0), ("cxr3class", "test", 0)]
    assert _drops(rows, AUTHORITY) == [(0, "kermany val"), (1, "cxr3class test")]


def test_an_unknown_split_is_refused() -> None:
    meta = pd.DataFrame({"source": ["kermany", "nih"], "split": ["train", "holdout"]})
    with pytest.raises(DatasetError, match="holdout"):
        rows_to_drop(meta, np.stack([_unit(0), _unit(0)]), AUTHORITY)


def test_a_copy_dropped_beside_its_twin_hands_over_the_labels_only_it_annotates() -> None:
    nan = np.nan
    meta = pd.DataFrame({"source": ["kermany", "cxr3class", "kermany", "cxr3class", "cxr3class"],
                         "split": ["train", "train", "train", "test", "val"]})
    # columns: Pneumonia, Tuberculosis. Row 1 is a 3-class copy of Kermany row 0 filed as pneumonia (Kermany
    # says normal); row 3 is a 3-class test copy of Kermany row 2, row 4 a copy of nothing
    labels = np.array([[0, nan], [1, 0], [1, nan], [1, 0], [0, 1]], dtype=np.float32)
    prints = np.stack([_unit(0), _unit(0), _unit(1), _unit(1), _unit(2)])
    keep, resolved, dropped = resolve_copies(meta, labels, prints, AUTHORITY)
    assert keep.tolist() == [True, False, False, True, True]
    assert dropped[["index", "kept"]].values.tolist() == [[1, 0], [2, 3]]
    np.testing.assert_array_equal(resolved[0], [0, 0])  # Kermany's Pneumonia 0 stays; Tuberculosis 0 comes
    np.testing.assert_array_equal(resolved[3], labels[3])  # a test row's labels never change
    np.testing.assert_array_equal(resolved[[2, 4]], labels[[2, 4]])
    assert np.isnan(labels[0, 1])  # the caller's array is left as it was
