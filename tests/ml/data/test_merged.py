"""The `merged` adapter on a tiny copy of the shared data layout: real Kermany sample JPEGs, small synthetic
3-class and NIH members, the label mapping, NaN for labels a member does not annotate, mixing weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ml.data import create_dataset
from ml.data._util import CHESTXRAY14_LABELS
from ml.data.base import Task
from ml.data.batches import Batches
from ml.data.copies import copy_pairs, fingerprints
from ml.data.merged import VOCABULARY
from ml.data.options import validate_options
from ml.errors import DatasetError
from ml.models import get_model_config
from ml.transforms import Preprocess, resolve_data_config
from tests.ml.data.merged_layout import build_shared_layout, recoded_copy


@pytest.fixture(scope="module")
def shared(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shared_layout(tmp_path_factory.mktemp("shared"), data_dir)


@pytest.fixture(scope="module")
def shared_with_copies(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layout with Kermany radiographs also in the 3-class set, re-encoded and filed as pneumonia, as on
    the real data (`python -m tools.collection_copies`). The first three are also Kermany test images."""
    root = build_shared_layout(tmp_path_factory.mktemp("shared-copies"), data_dir)
    pneumonia = root / "cxr3class-normal-pneumonia-tb" / "parth261204_256px" / "pneumonia"
    for k, image in enumerate(sorted((data_dir / "kermany-sample" / "NORMAL").iterdir())[:8]):
        recoded_copy(image, pneumonia / f"pneumonia-copy-{k}.jpg")
    return root


def _known(ds, source: str) -> np.ndarray:
    rows = ds.labels[(ds.metadata["source"] == source).to_numpy()]
    return ~np.isnan(rows)


def test_members_share_one_vocabulary_and_mark_what_they_do_not_annotate(shared: Path) -> None:
    ds = create_dataset("merged", shared)
    assert ds.task is Task.MULTILABEL and ds.pathologies == [*CHESTXRAY14_LABELS, "Tuberculosis"]
    pneumonia, tb = VOCABULARY.index("Pneumonia"), VOCABULARY.index("Tuberculosis")
    assert set(ds.metadata["source"]) == {"kermany", "cxr3class", "nih"}

    known = _known(ds, "kermany")  # Pneumonia only
    assert known[:, pneumonia].all() and known.sum() == known.shape[0]
    known = _known(ds, "cxr3class")  # Pneumonia and Tuberculosis only
    assert known[:, [pneumonia, tb]].all() and known.sum() == 2 * known.shape[0]
    known = _known(ds, "nih")  # the 14 NIH labels, not Tuberculosis
    assert known[:, :14].all() and not known[:, tb].any()

    meta = ds.metadata
    kermany = ds.labels[(meta["source"] == "kermany").to_numpy(), pneumonia]
    is_pneumonia = meta.loc[meta["source"] == "kermany", "class"].eq("PNEUMONIA").to_numpy()
    np.testing.assert_array_equal(kermany, is_pneumonia.astype(np.float32))
    cxr = meta["source"].eq("cxr3class").to_numpy()
    cls = meta.loc[cxr, "class"].to_numpy()
    np.testing.assert_array_equal(ds.labels[cxr][:, tb], (cls == "tuberculosis").astype(np.float32))
    np.testing.assert_array_equal(ds.labels[cxr][:, pneumonia], (cls == "pneumonia").astype(np.float32))
    assert (ds.labels[cxr][cls == "normal"][:, [pneumonia, tb]] == 0).all()


def test_each_member_keeps_its_split_and_kermany_tests_on_the_official_test_folder(shared: Path) -> None:
    ds = create_dataset("merged", shared)
    meta = ds.metadata
    kermany_test = meta[(meta["source"] == "kermany") & (meta["split"] == "test")]
    assert len(kermany_test) == 6 and kermany_test["path"].str.contains("test_224px").all()
    assert not meta.loc[(meta["source"] == "kermany") & (meta["split"] != "test"), "path"].str.contains(
        "test_224px").any()
    nih = meta[meta["source"] == "nih"]
    assert nih["split"].value_counts().to_dict() == {"train": 8, "val": 4, "test": 4}
    assert all(name.startswith(split) for name, split in zip(nih["name"], nih["split"], strict=True))
    image, _ = ds[int(np.flatnonzero(meta["source"].eq("nih").to_numpy())[0])]
    assert image.shape == (64, 64) and image.dtype == np.float32


def test_weights_give_each_member_its_share_of_every_split(shared: Path) -> None:
    ds = create_dataset("merged", shared, members=["kermany", "nih"], weights={"kermany": 1.0, "nih": 3.0})
    assert set(ds.metadata["source"]) == {"kermany", "nih"}
    share = ds.metadata.groupby(["split", "source"])["sample_weight"].sum().unstack()
    np.testing.assert_allclose(share["nih"] / share["kermany"], 3.0)


def test_weighted_batches_draw_members_in_proportion(shared: Path) -> None:
    ds = create_dataset("merged", shared, members=["kermany", "nih"], weights={"kermany": 1.0, "nih": 3.0})
    train = ds.split("train")
    preprocess = Preprocess(resolve_data_config(get_model_config("simple_cnn"), input_size=16))
    batches = Batches(train, preprocess, batch_size=8, shuffle=True,
                      sample_weights=train.metadata["sample_weight"].to_numpy())
    generator = torch.Generator().manual_seed(0)
    drawn_nih = drawn = 0
    is_nih = torch.from_numpy(train.metadata["source"].eq("nih").to_numpy())
    for _ in range(200):
        order = torch.multinomial(batches.sample_weights, len(train), replacement=True, generator=generator)
        drawn_nih += int(is_nih[order].sum())
        drawn += len(order)
    # nih holds 8 of ~24 training rows (a third) but 3/4 of the weight
    assert 0.70 < drawn_nih / drawn < 0.80
    # and an epoch of the batches follows the same sampler
    seen = sum(len(labels) for _, labels in batches.epoch(torch.Generator().manual_seed(1)))
    assert seen == len(train)


def test_bad_members_and_weights_are_refused(shared: Path) -> None:
    with pytest.raises(DatasetError, match="unknown member"):
        create_dataset("merged", shared, members=["kermany", "chexpert"])
    with pytest.raises(DatasetError, match="weights"):
        create_dataset("merged", shared, members=["kermany"], weights={"nih": 1.0})
    with pytest.raises(DatasetError, match="weights"):
        create_dataset("merged", shared, members=["kermany"], weights={"kermany": 0.0})
    with pytest.raises(DatasetError, match="once"):
        create_dataset("merged", shared, members=["nih", "nih"])


def test_options_are_validated_like_any_adapter_s() -> None:
    assert validate_options("merged", {"members": ["kermany", "nih"], "weights": {"nih": 2}}) == {
        "members": ["kermany", "nih"], "weights": {"nih": 2.0}}
    for bad in ({"members": "kermany", "extra": 1}, {"weights": {"nih": "heavy"}}, {"weights": {"nih": float("inf")}}):
        with pytest.raises(ValidationError):
            validate_options("merged", bad)


def test_fit_trains_on_the_merged_dataset_and_masks_what_members_lack(shared: Path, tmp_path: Path) -> None:
    from ml.config import TrainConfig
    from ml.training.loop import fit

    config = TrainConfig.parse({"model": "simple_cnn", "dataset": "merged", "data_root": str(shared),
                                "dataset_options": {"weights": {"nih": 2.0}},
                                "params": {"epochs": 1, "batch_size": 16, "input_size": 32, "pos_weight": True}})
    result = fit(config, tmp_path / "run")
    meta = create_dataset("merged", shared).split("test").metadata
    test = result.report["splits"]["test"]
    assert test["n"] == len(meta)  # every member's test rows
    per_class = test["per_class"]
    # each label is scored on the rows that annotate it: Tuberculosis on the 3-class rows, Hernia on NIH's
    assert per_class["Tuberculosis"]["n"] == int((meta["source"] == "cxr3class").sum())
    assert per_class["Hernia"]["n"] == int((meta["source"] == "nih").sum()) == 4
    assert per_class["Pneumonia"]["n"] == int((meta["source"] != "nih").sum()) + 4
    assert np.isfinite(result.history[0]["train"]["loss"])
    # the best epoch is kept by the mean over members of each member's mean AUROC, not by the pooled labels
    val = result.history[0]["val"]
    members = [val[f"mean_auroc_{m}"] for m in ("cxr3class", "kermany", "nih")]
    assert "mean_auroc_pooled" in val
    assert val["mean_auroc"] == pytest.approx(np.mean([v for v in members if v is not None]))


def test_no_image_is_trained_on_or_chosen_by_while_a_copy_of_it_is_tested(shared_with_copies: Path) -> None:
    ds = create_dataset("merged", shared_with_copies)
    alone = {m: create_dataset("merged", shared_with_copies, members=[m]) for m in ("kermany", "cxr3class", "nih")}
    meta = ds.metadata
    assert len(meta) < sum(len(d) for d in alone.values())  # the copies were there, and rows went
    for member, own in alone.items():  # each member's test split is its benchmark, kept whole
        kept = meta.loc[(meta["source"] == member) & (meta["split"] == "test"), "path"]
        assert kept.tolist() == own.metadata.loc[own.metadata["split"] == "test", "path"].tolist()
    prints = fingerprints(meta["path"].tolist())
    sources, splits = meta["source"].to_numpy(), meta["split"].to_numpy()
    across = [(i, j) for i, j in copy_pairs(prints, prints) if sources[i] != sources[j]]
    assert all(splits[i] == splits[j] == "test" for i, j in across), [
        (sources[i], splits[i], sources[j], splits[j]) for i, j in across if splits[i] != "test"]
    # a 3-class training row never copies a Kermany row (whatever its split, Kermany's wins); a Kermany row
    # goes only where its 3-class copy sits in a later split, and that copy stays
    copies = meta["path"].str.contains("pneumonia-copy-").to_numpy()
    assert copies.any() and not copies[splits == "train"].any()
    own = alone["kermany"].metadata
    lost = own[~own["path"].isin(meta["path"])]
    rank = {"train": 0, "val": 1, "test": 2}
    # a Kermany row whose 3-class copy went beside it keeps its Pneumonia label and gains Tuberculosis 0
    tb, pneumonia = VOCABULARY.index("Tuberculosis"), VOCABULARY.index("Pneumonia")
    own_pneumonia = dict(zip(own["path"], alone["kermany"].labels[:, pneumonia], strict=True))
    kermany_rows = np.flatnonzero(sources == "kermany")
    gained = [r for r in kermany_rows if not np.isnan(ds.labels[r, tb])]
    assert gained and (ds.labels[gained, tb] == 0).all()
    assert all(ds.labels[r, pneumonia] == own_pneumonia[meta["path"].iat[r]] for r in kermany_rows)
    lost_prints = fingerprints(lost["path"].tolist())
    for k, split in enumerate(lost["split"]):
        later = [j for _, j in copy_pairs(lost_prints[k:k + 1], prints) if sources[j] == "cxr3class"]
        assert later and all(rank[splits[j]] > rank[split] for j in later)
