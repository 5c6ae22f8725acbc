"""Tests for `ml.data.splits`: group-disjoint, deterministic, close to the fractions, stratified."""

from __future__ import annotations

import numpy as np
import pytest

from ml.data.splits import group_split, merge_groups, patient_split
from ml.errors import DatasetError

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _patients(n_patients: int = 600, seed: int = 1) -> np.ndarray:
    sizes = np.random.default_rng(seed).integers(1, 6, n_patients)
    return np.repeat([f"p{i:04d}" for i in range(n_patients)], sizes)


def test_patient_split_is_disjoint_and_close_to_the_fractions() -> None:
    ids = _patients()
    split = patient_split(ids, FRACTIONS, seed=0)
    for name, fraction in FRACTIONS.items():
        assert abs((split == name).mean() - fraction) < 0.04
    owners = {}
    for pid, s in zip(ids, split, strict=True):
        assert owners.setdefault(pid, s) == s


def test_patient_split_is_deterministic_and_order_free() -> None:
    ids = _patients()
    first = patient_split(ids, FRACTIONS, seed=3)
    np.testing.assert_array_equal(first, patient_split(ids, FRACTIONS, seed=3))
    assert (first != patient_split(ids, FRACTIONS, seed=4)).any()
    order = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(patient_split(ids[order], FRACTIONS, seed=3), first[order])


def test_split_is_stratified_by_the_rarest_label() -> None:
    ids = _patients(2000)
    rng = np.random.default_rng(5)
    labels = np.zeros((len(ids), 2), dtype=np.float32)
    labels[:, 0] = rng.random(len(ids)) < 0.5
    labels[:, 1] = rng.random(len(ids)) < 0.03  # rare
    labels[rng.random(len(ids)) < 0.1, 0] = np.nan
    split = patient_split(ids, FRACTIONS, seed=0, labels=labels)
    rare = labels[:, 1] == 1
    for name, fraction in FRACTIONS.items():
        assert abs((split[rare] == name).mean() - fraction) < 0.05


def test_group_split_keeps_groups_and_gives_missing_ids_their_own_group() -> None:
    groups = np.array(["a", "a", "b", None, None, "c", "c", "c"], dtype=object)
    split = group_split(groups, None, {"x": 0.5, "y": 0.5}, seed=0)
    assert split[0] == split[1] and split[5] == split[6] == split[7]
    assert set(split) <= {"x", "y"}


def test_zero_fraction_split_gets_no_rows() -> None:
    split = patient_split(_patients(), {"train": 0.9, "val": 0.1, "test": 0.0}, seed=0)
    assert set(split) == {"train", "val"}


@pytest.mark.parametrize("bad", [{"train": 0.7, "val": 0.1}, {"train": 1.2, "val": -0.2}, {}])
def test_bad_fractions_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(DatasetError, match="sum to 1"):
        patient_split(["a", "b"], bad, seed=0)


def test_merge_groups_is_transitive_and_missing_keys_link_nothing() -> None:
    patient = [1, 1, 2, 3, None, None]
    image = ["x", "y", "y", "z", "w", "v"]
    groups = merge_groups(patient, image)
    assert groups[0] == groups[1] == groups[2]  # 0-1 by patient, 1-2 by image
    assert len({groups[3], groups[4], groups[5], groups[0]}) == 4


def test_splits_leave_global_random_state_alone() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    patient_split(_patients(), FRACTIONS, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
