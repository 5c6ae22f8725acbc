"""One image in several collections: finding the copies, and which rows a pooled dataset keeps.

Public chest X-ray sets are often assembled from each other. When a pooled dataset (`ml.data.merged`)
trains on one collection and tests on another, a copy of a test image in a training split is leakage, and
a copy filed under two labels teaches both. Copies differ in size, aspect and encoding (one collection
squashed to 224 px and re-encoded, another resized keeping the aspect ratio), so bytes and exact pixels
do not match; a small fingerprint does: the image area-resized to `SIDE` x `SIDE` (squashed, as every
collection here may be), centred and scaled to unit length, so that the dot product of two fingerprints
is their pixels' correlation. Two images whose fingerprints correlate at `COPY_CORRELATION` or more are
taken for copies. On the shared data the copies sit at 0.999+ at 96 px and nothing else above 0.98 at
this size (`python -m tools.collection_copies` prints the histogram), so the cut has room on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data._util import find_images
from ml.errors import DatasetError, ImageError
from ml.imaging import read_image

SIDE = 24
COPY_CORRELATION = 0.99
# a split protects the ones below it: a training or validation row that copies a row of a later split
# is dropped, so that no image is learnt from, or chosen by, while it is tested on elsewhere
SPLIT_RANK = {"train": 0, "val": 1, "test": 2}


def fingerprints(paths: Sequence[str | Path], side: int = SIDE) -> np.ndarray:
    """(N, side * side) float32: each image squashed to side x side by area, zero mean, unit length."""
    import cv2

    out = np.zeros((len(paths), side * side), dtype=np.float32)
    for k, path in enumerate(paths):
        try:
            pixels = read_image(path)
        except ImageError as exc:
            raise DatasetError(f"cannot fingerprint {path}: {exc}") from None
        small = cv2.resize(np.asarray(pixels, dtype=np.float32), (side, side), interpolation=cv2.INTER_AREA)
        v = small.ravel() - small.mean()
        norm = float(np.linalg.norm(v))
        out[k] = v / norm if norm > 0 else v  # a flat image correlates with nothing
    return out


def copy_pairs(a: np.ndarray, b: np.ndarray, threshold: float = COPY_CORRELATION,
               chunk: int = 4096) -> np.ndarray:
    """(K, 2) indices (i into `a`, j into `b`) of the pairs of fingerprints correlating >= `threshold`."""
    found = []
    for start in range(0, len(a), chunk):
        i, j = np.nonzero(a[start:start + chunk] @ b.T >= threshold)
        found.append(np.stack([i + start, j], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def published_classes(paths: Sequence[str | Path], authority: Path,
                      threshold: float = COPY_CORRELATION) -> list[str | None]:
    """Per image, the class under which the collection at `authority` (class-per-folder images, found
    recursively) files its copy: the copy's folder name, lower case. None for an image without a copy there,
    or whose copies there sit under two classes (the publisher contradicts itself: nothing to follow)."""
    files = find_images(authority)
    if not files:
        raise DatasetError(f"label authority {authority} holds no images")
    classes = [f.parent.name.lower() for f in files]
    found: list[set[str]] = [set() for _ in paths]
    for i, j in copy_pairs(fingerprints(paths), fingerprints(files), threshold):
        found[i].add(classes[j])
    return [next(iter(f)) if len(f) == 1 else None for f in found]


def rows_to_drop(metadata: pd.DataFrame, prints: np.ndarray, authority: dict[str, int],
                 threshold: float = COPY_CORRELATION) -> pd.DataFrame:
    """The rows of a pooled dataset that copy a row of another collection and must go, with the reason.

    `metadata` has `source` (the collection) and `split` per row, `prints` their fingerprints; `authority`
    ranks the collections whose labels are the source of record (higher wins). For every pair of copies
    from two collections:

    - in different splits, the copy in the earlier split goes (train before val before test): no image is
      trained on or chosen by while its copy is tested on, and no test split ever loses a row;
    - in the same training or validation split, the copy from the collection of lower authority goes: the
      image is kept once, with the labels of the collection that published it (`resolve_copies` adds the
      labels only the dropped copy annotates);
    - both in test splits, both stay: each collection's test split is its benchmark, kept whole.

    Returns one row per dropped index (`index`, `source`, `split`, `copy_of`: the kept copy's source and
    split, `kept`: its index, `same_split`), empty when nothing copies anything.
    """
    sources = metadata["source"].to_numpy()
    splits = metadata["split"].to_numpy()
    unknown = sorted(set(splits) - set(SPLIT_RANK))
    if unknown:
        raise DatasetError(f"cannot resolve copies across collections: unknown split(s) {unknown}")
    names = list(dict.fromkeys(sources))
    drop: dict[int, int] = {}
    for x, first in enumerate(names):
        for second in names[x + 1:]:
            rows_a, rows_b = np.flatnonzero(sources == first), np.flatnonzero(sources == second)
            for i, j in copy_pairs(prints[rows_a], prints[rows_b], threshold):
                ra, rb = int(rows_a[i]), int(rows_b[j])
                rank_a, rank_b = SPLIT_RANK[splits[ra]], SPLIT_RANK[splits[rb]]
                if rank_a != rank_b:
                    loser, keeper = (ra, rb) if rank_a < rank_b else (rb, ra)
                elif splits[ra] == "test":
                    continue
                else:
                    loser, keeper = (ra, rb) if authority[first] < authority[second] else (rb, ra)
                drop.setdefault(loser, keeper)
    index = sorted(drop)
    kept = [drop[k] for k in index]
    return pd.DataFrame({"index": index, "source": sources[index], "split": splits[index],
                         "copy_of": [f"{sources[k]} {splits[k]}" for k in kept], "kept": kept,
                         "same_split": splits[index] == splits[kept]})


def resolve_copies(metadata: pd.DataFrame, labels: np.ndarray, prints: np.ndarray, authority: dict[str, int],
                   threshold: float = COPY_CORRELATION) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """`rows_to_drop` applied: a row mask (False: dropped), the labels, and the dropped rows.

    Where a copy goes in favour of one in the same split, the labels it annotates and the kept copy does not
    (NaN there) move to the kept copy: a Kermany image the 3-class set also holds keeps Kermany's Pneumonia
    label and gains the 3-class set's Tuberculosis 0, which no other Kermany row carries. A label both
    annotate keeps the kept copy's value (the authority's). A copy dropped for a later split (leakage) gives
    nothing: the later split's labels are never changed.
    """
    dropped = rows_to_drop(metadata, prints, authority, threshold)
    keep = np.ones(len(metadata), dtype=bool)
    keep[dropped["index"].to_numpy(dtype=np.int64)] = False
    labels = labels.copy()
    for loser, kept in dropped.loc[dropped["same_split"], ["index", "kept"]].itertuples(index=False):
        if keep[kept]:
            add = np.isnan(labels[kept]) & ~np.isnan(labels[loser])
            labels[kept, add] = labels[loser, add]
    return keep, labels, dropped
