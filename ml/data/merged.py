"""Several chest X-ray datasets on one label vocabulary (torchxrayvision's approach to "one model for every
pathology"): the 14 NIH ChestX-ray14 labels plus Tuberculosis.

`root` is the shared data folder; each member is a preset naming its files under `root`, its adapter and
options, and how its labels map onto the vocabulary. A member annotates only some labels: every other
label of its rows is NaN ("not annotated"), which the loss (`ml.training.losses`) and every metric
(`ml.evaluation.metrics`) mask out, so a Kermany normal never teaches "no Cardiomegaly".

Members and their mappings:

- `kermany`: Kermany et al. pediatric images (224 px). PNEUMONIA -> Pneumonia 1, NORMAL -> Pneumonia 0;
  nothing else annotated. train/val: a patient-aware 85/15 split of Kaggle's training images (as
  `recipes/pneumonia-kermany128.toml`); test: Kermany's official test split (`test_224px/`).
- `cxr3class`: the parth-261204 Normal/Pneumonia/Tuberculosis images. pneumonia -> Pneumonia 1,
  Tuberculosis 0; tuberculosis -> Tuberculosis 1, Pneumonia 0; normal -> both 0. The split of
  `recipes/cxr3class-normal-pneumonia-tb.toml` (70/10/20, duplicate-aware, seed 0).
- `nih`: the 996-image NIH ChestX-ray14 subset at 64 px with its 14 CheXNet-list labels and the
  CheXNet split (train 725, val 94, test 177: the split of the shipped `nih14` model); Tuberculosis
  not annotated.

Rows keep their member's split. The members share images: 559 Kermany images have a copy among the 3-class
ones (69 of them from Kermany's official test split, and 122 Kermany NORMAL images filed there as pneumonia;
`python -m tools.collection_copies`). Copies across members are resolved by `ml.data.copies.resolve_copies`:
a training or validation row that copies a row of a later split elsewhere is dropped (no member's test image
is trained on), and of two copies in the same training or validation split the one from the member of lower
`authority` is (the image is kept once, with the labels of the collection that published it: Kermany, then
NIH, then the 3-class set, whose provenance is unknown, and gaining the labels only the dropped copy
annotates: a Kermany image the 3-class set holds gains Tuberculosis 0). Test splits are never changed, so
each member's test figures stay comparable with its single-task model's. `metadata["source"]` names the
member; `metadata["sample_weight"]` gives each member's rows of a split a total weight proportional to
`weights[member]`, which the training loop's weighted sampler uses to mix members in every batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data._util import CHESTXRAY14_LABELS, require_dir
from ml.data.base import CXRDataset, FileImages, Task
from ml.data.copies import fingerprints, resolve_copies
from ml.data.factory import register_dataset
from ml.data.folder import folder
from ml.errors import DatasetError

logger = logging.getLogger(__name__)

VOCABULARY = [*CHESTXRAY14_LABELS, "Tuberculosis"]
KERMANY_PATIENT = r"^((?:NORMAL2-)?IM-\d+|person\d+)[-_]"

# member -> (labels (N, len(VOCABULARY)) with NaN where not annotated, metadata with `split`, image paths)
MemberRows = tuple[np.ndarray, pd.DataFrame, list[str]]


@dataclass(frozen=True)
class Member:
    description: str
    read: Callable[[Path], MemberRows]
    # whose labels win when members hold copies of one image (higher wins): the collection that published it
    authority: int


def _blank(n: int) -> np.ndarray:
    return np.full((n, len(VOCABULARY)), np.nan, dtype=np.float32)


def _set(labels: np.ndarray, name: str, values: np.ndarray) -> None:
    labels[:, VOCABULARY.index(name)] = values


def _kermany(root: Path) -> MemberRows:
    base = root / "kermany-pediatric-pneumonia"
    common = {"task": "binary", "positive": "PNEUMONIA"}
    train = folder(base / "full_224px_waliatushar", split="stratified", fractions={"train": 0.85, "val": 0.15},
                   seed=0, patient_pattern=KERMANY_PATIENT, group_duplicates=True, **common)
    test = folder(base / "test_224px", split="stratified", fractions={"test": 1.0}, **common)
    meta = pd.concat([train.metadata, test.metadata], ignore_index=True)
    labels = _blank(len(meta))
    _set(labels, "Pneumonia", np.concatenate([train.labels[:, 0], test.labels[:, 0]]))
    return labels, meta, meta["path"].tolist()


def _cxr3class(root: Path) -> MemberRows:
    ds = folder(root / "cxr3class-normal-pneumonia-tb" / "parth261204_256px", split="stratified",
                fractions={"train": 0.7, "val": 0.1, "test": 0.2}, seed=0, group_duplicates=True,
                duplicate_hash="average", label_authority=(root / "kermany-pediatric-pneumonia").resolve())
    labels = _blank(len(ds))
    cls = ds.metadata["class"].str.lower().to_numpy()
    _set(labels, "Pneumonia", (cls == "pneumonia").astype(np.float32))
    _set(labels, "Tuberculosis", (cls == "tuberculosis").astype(np.float32))
    return labels, ds.metadata, ds.metadata["path"].tolist()


def _nih(root: Path) -> MemberRows:
    base = root / "nih-chestxray14"
    folder_64 = require_dir(base / "nih1000_64px_dinbe0527", "NIH 64 px image folder")
    table = pd.read_csv(folder_64 / "labels.csv", usecols=["path", "image", "patient_id", "age", "sex", "view"])
    path_of = dict(zip(table["image"], table["path"], strict=True))
    with np.load(base / "nih1000_chestmnist_format_28.npz", allow_pickle=False) as npz:
        parts = [(s, npz[f"{s}_names"], npz[f"{s}_labels"]) for s in ("train", "val", "test")]
    names = np.concatenate([n for _, n, _ in parts])
    missing = [n for n in names if n not in path_of]
    if missing:
        raise DatasetError(f"nih member: {len(missing)} images of the CheXNet split lack a 64 px file, e.g. {missing[0]}")
    labels = _blank(len(names))
    labels[:, : len(CHESTXRAY14_LABELS)] = np.concatenate([lab for _, _, lab in parts]).astype(np.float32)
    meta = pd.DataFrame({"split": np.concatenate([[s] * len(n) for s, n, _ in parts]), "name": names})
    meta = meta.merge(table.rename(columns={"image": "name"}), on="name", how="left")
    meta["path"] = [str(folder_64 / path_of[n]) for n in names]
    return labels, meta, meta["path"].tolist()


MEMBERS: dict[str, Member] = {
    "kermany": Member("Kermany pediatric pneumonia (Pneumonia); test = the official Kermany test split", _kermany,
                      authority=2),
    "cxr3class": Member("parth-261204 normal/pneumonia/tuberculosis (Pneumonia, Tuberculosis)", _cxr3class,
                        authority=0),
    "nih": Member("996 NIH ChestX-ray14 images at 64 px, CheXNet split (the 14 NIH labels)", _nih, authority=1),
}


@register_dataset("merged", description="Several datasets on one vocabulary (14 NIH labels + Tuberculosis), "
                                        "labels a member lacks are NaN")
def merged(
    root: Path,
    *,
    members: Sequence[str] = ("kermany", "cxr3class", "nih"),
    weights: Mapping[str, float] | None = None,
) -> CXRDataset:
    """The member datasets under the shared data folder `root`, mixed by `weights` (default: equal)."""
    require_dir(root, "shared data folder")
    unknown = [m for m in members if m not in MEMBERS]
    if unknown or not members or len(set(members)) != len(members):
        what = f"unknown member(s) {unknown}" if unknown else "give each member once, at least one"
        raise DatasetError(f"option members: {what}; available: {', '.join(MEMBERS)}")
    weights = dict(weights or {})
    extra = sorted(set(weights) - set(members))
    if extra or any(not w > 0 for w in weights.values()):
        raise DatasetError(f"option weights: one positive weight per member of {list(members)}; got {weights}")

    labels, frames, paths = [], [], []
    for name in members:
        member_labels, meta, member_paths = MEMBERS[name].read(root)
        logger.info("merged: %s: %d rows (%s)", name, len(meta),
                    ", ".join(f"{s} {n}" for s, n in meta["split"].value_counts().sort_index().items()))
        labels.append(member_labels)
        frames.append(meta.assign(source=name))
        paths += member_paths
    metadata = pd.concat(frames, ignore_index=True)
    labels_all = np.concatenate(labels)
    if len(members) > 1:
        keep, labels_all = _without_copies(metadata, labels_all, paths, members)
        metadata, labels_all = metadata[keep].reset_index(drop=True), labels_all[keep]
        paths = [p for p, k in zip(paths, keep, strict=True) if k]
    metadata["sample_weight"] = sample_weights(metadata, {m: float(weights.get(m, 1.0)) for m in members})
    return CXRDataset("merged", list(VOCABULARY), labels_all, Task.MULTILABEL, metadata, FileImages(paths))


def _without_copies(metadata: pd.DataFrame, labels: np.ndarray, paths: list[str],
                    members: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`resolve_copies` on the pooled rows: a row mask (False: dropped) and the labels, each drop logged."""
    keep, resolved, dropped = resolve_copies(metadata, labels, fingerprints(paths),
                                             {m: MEMBERS[m].authority for m in members})
    for (source, split, copy_of), n in dropped.groupby(["source", "split", "copy_of"]).size().items():
        logger.info("merged: dropped %d %s %s rows, copies of %s images", n, source, split, copy_of)
    added = int((np.isnan(labels) & ~np.isnan(resolved)).sum())
    if added:
        logger.info("merged: %d labels of dropped copies added to the copies kept", added)
    return keep, resolved


def sample_weights(metadata: pd.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    """Per row: its member's weight shared among that member's rows of the same split.

    Summed over a split, each member then holds `weights[member] / sum(weights)` of the probability mass,
    whatever its size.
    """
    counts = metadata.groupby(["source", "split"])["source"].transform("size").to_numpy()
    return metadata["source"].map(weights).to_numpy(dtype=np.float64) / counts
