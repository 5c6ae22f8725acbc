"""Split helpers shared by the adapters: patient- (or group-) disjoint, deterministic for a seed.

Rows of one group (a patient, a set of identical images) always land in the same split, so no patient
and no duplicated image is seen in training and again in evaluation. Within each stratum (groups keyed
by their rarest positive label) the groups are shuffled and laid along [0, 1) in proportion to their
row counts, and each split takes its fraction of that line from a random starting offset (systematic
sampling), which keeps every stratum close to the requested fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ml.errors import DatasetError

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Split name -> fraction; fractions must be non-negative and sum to 1."""
    fractions = {str(k): float(v) for k, v in fractions.items()}
    if not fractions or any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise DatasetError(f"split fractions must be non-negative and sum to 1; got {fractions}")
    return fractions


def group_split(
    groups: Sequence[object] | np.ndarray,
    labels: np.ndarray | None,
    fractions: Mapping[str, float],
    seed: int,
) -> np.ndarray:
    """A split name per row; rows sharing a group id share a split (missing ids are their own group).

    `labels` (N, L) with 1 positive (NaN ignored) stratifies groups by their rarest positive label;
    None splits without stratification.
    """
    fractions = check_fractions(fractions)
    codes = _group_codes(groups)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    sizes = np.bincount(codes, minlength=n_groups)
    strata = _group_strata(codes, n_groups, labels)
    names = list(fractions)
    bounds = np.cumsum(list(fractions.values()))
    rng = np.random.default_rng(seed)
    group_split_idx = np.zeros(n_groups, dtype=np.int64)
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        ends = np.cumsum(sizes[members])
        position = ((ends - sizes[members] / 2) / ends[-1] + rng.random()) % 1.0
        group_split_idx[members] = np.minimum(np.searchsorted(bounds, position, side="right"), len(names) - 1)
    return np.asarray(names, dtype=object)[group_split_idx[codes]]


def patient_split(
    patient_ids: Sequence[object] | np.ndarray,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """A split name per row with every patient's rows in one split (see `group_split`)."""
    return group_split(patient_ids, labels, fractions, seed)


def merge_groups(*keys: Sequence[object] | np.ndarray) -> np.ndarray:
    """Group ids such that rows sharing any key (patient, image hash, ...) share a group.

    Union-find over the keys; a missing key links nothing.
    """
    n = len(keys[0])
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    for key in keys:
        first: dict[int, int] = {}
        for i, code in enumerate(pd.factorize(np.asarray(key, dtype=object))[0]):
            if code >= 0:
                parent[find(i)] = find(first.setdefault(code, i))
    return np.array([find(i) for i in range(n)])


def _group_codes(groups: Sequence[object] | np.ndarray) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(list(groups), dtype=object), sort=True)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def _group_strata(codes: np.ndarray, n_groups: int, labels: np.ndarray | None) -> np.ndarray:
    """Per group: the rank (by prevalence, rarest first) of its rarest positive label; L if none."""
    if labels is None or labels.size == 0:
        return np.zeros(n_groups, dtype=np.int64)
    positive = np.nan_to_num(np.asarray(labels, dtype=np.float64)) > 0.5
    n_labels = positive.shape[1]
    rank = np.empty(n_labels, dtype=np.int64)
    rank[np.argsort(positive.sum(axis=0), kind="stable")] = np.arange(n_labels)
    row_rank = np.where(positive, rank, n_labels).min(axis=1)
    strata = np.full(n_groups, n_labels, dtype=np.int64)
    np.minimum.at(strata, codes, row_rank)
    return strata
