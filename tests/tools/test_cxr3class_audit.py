"""Tests for `tools.cxr3class_audit`'s pure pieces on synthetic data: copies across classes and which of
them are flagged or dropped, the linear probe, per-group accuracy, the macro-F1 diagnostics and the
conclusion line."""

from __future__ import annotations

import numpy as np
import pytest

from tools import cxr3class_audit as audit
from tools.cards import audit_limit_lines


def test_sub_collection_names_square_common_sizes_and_lumps_the_rest() -> None:
    assert audit.sub_collection("tuberculosis", 512, 512) == "tuberculosis-512"
    assert audit.sub_collection("normal", 1024, 1024) == "normal-1024"
    assert audit.sub_collection("normal", 1300, 821) == "normal-other"
    assert audit.sub_collection("normal", 300, 300) == "normal-other"


def test_pixel_key_sees_identical_pixels_only() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((8, 8)).astype(np.float32)
    assert audit.pixel_key(a) == audit.pixel_key(a.copy())
    b = a.copy()
    b[0, 0] = (round(a[0, 0] * 255) + 1) % 256 / 255  # one grey level apart in one pixel
    assert audit.pixel_key(a) != audit.pixel_key(b)
    assert audit.pixel_key(a) != audit.pixel_key(a.reshape(4, 16))  # same bytes, other shape


def test_pairs_from_keys_gives_every_pair_within_a_key() -> None:
    assert sorted(audit.pairs_from_keys(["x", "y", "x", "x", "z"])) == [(0, 2), (0, 3), (2, 3)]
    assert audit.pairs_from_keys(["a", "b"]) == []


def test_cross_class_summary_counts_per_class_pair_flagged_and_dropped() -> None:
    # rows 0-2 one picture (normal, TB, TB); rows 3-4 another (normal, pneumonia); row 5-6 same-class copies
    labels = ["normal", "tb", "tb", "normal", "pneumonia", "tb", "tb"]
    subs = ["normal-1024", "tb-512", "tb-512", "normal-other", "pneumonia-other", "tb-256", "tb-256"]
    flagged = [True, True, False, False, False, False, False]
    dropped = [True, True, True, False, False, False, False]
    pairs = audit.pairs_from_keys(["p", "p", "p", "q", "q", "r", "r"])
    s = audit.cross_class_summary(pairs, labels, subs, flagged, dropped)
    assert s["total"] == {"pairs": 3, "flagged": 1, "unflagged": 2, "dropped_by_split": 2}
    assert s["by_class_pair"]["normal/tb"] == {"pairs": 2, "flagged": 1, "unflagged": 1, "dropped_by_split": 2}
    assert s["by_class_pair"]["normal/pneumonia"] == {"pairs": 1, "flagged": 0, "unflagged": 1,
                                                      "dropped_by_split": 0}
    assert s["by_sub_collection_pair"] == {"normal-1024/tb-512 (flagged)": 1, "normal-1024/tb-512 (unflagged)": 1,
                                           "normal-other/pneumonia-other (unflagged)": 1}
    assert s["images_with_copy_in_other_class"] == {"normal-1024": 1, "tb-512": 2, "normal-other": 1,
                                                    "pneumonia-other": 1}


def test_near_pairs_join_slightly_changed_copies_but_not_other_pictures() -> None:
    rng = np.random.default_rng(1)
    base = rng.random((3, 32, 32)) * 255
    thumbs = np.concatenate([base, base[:1] + rng.normal(0, 1.0, (1, 32, 32))])  # row 3: row 0, re-encoded
    assert audit.near_pairs(thumbs, 4.0) == [(0, 3)]
    assert audit.near_pairs(thumbs, 0.1) == []


def _two_classes(separation: float, n: int = 200, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, d))
    x[:, 0] += separation * y
    return x, y


def test_probe_separates_separable_data_and_not_identical_distributions() -> None:
    x, y = _two_classes(separation=3.0)
    assert audit.probe_auroc(x, y) > 0.95
    x, y = _two_classes(separation=0.0)
    assert 0.35 < audit.probe_auroc(x, y) < 0.65


def test_probe_folds_keep_groups_together_and_stratify() -> None:
    y = np.repeat([0, 1], 50)
    groups = np.arange(100) // 2  # pairs
    fold = audit.fold_ids(y, groups, folds=5, seed=0)
    assert set(fold) == set(range(5))
    assert (fold[0::2] == fold[1::2]).all()
    assert all(abs((y[fold == k] == 1).mean() - 0.5) < 0.2 for k in range(5))


def test_fit_logistic_matches_the_closed_form_direction_on_a_simple_problem() -> None:
    x, y = _two_classes(separation=2.0, d=3)
    w, b = audit.fit_logistic(x, y)
    assert w[0] > 1.0 and abs(w[1]) < 0.5 and abs(w[2]) < 0.5
    assert abs(b + w[0]) < 1.0  # the boundary sits between the class means (0 and 2)


def test_group_accuracy_per_split_and_group() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    acc = audit.group_accuracy(truth, pred, ["a", "a", "b", "b", "a", "b"], ["train"] * 4 + ["test"] * 2)
    assert acc["train"]["a"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert acc["train"]["b"]["accuracy"] == 1.0
    assert acc["test"]["a"]["accuracy"] == 0.0 and acc["test"]["b"]["correct"] == 1
    assert audit.rest_accuracy(acc, "a") == {"train": 1.0, "test": 1.0}


def test_macro_f1_and_diagnostics() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 0, 0])
    assert audit.macro_f1(truth, truth, 3) == 1.0
    assert audit.macro_f1(truth, pred, 3) == pytest.approx((2 / 3 + 1 + 0) / 3)
    f = audit.f1_diagnostics(truth, pred, np.array([False, False, False, False, True, True]), 3)
    assert f["as_shipped"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert f["suspect_all_right"] == 1.0
    assert f["suspect_excluded"] == pytest.approx(2 / 3)  # class 2 left with no rows: F1 0 of 3 classes


def test_publisher_diagnostics_score_conflicting_rows_against_the_publishers_class() -> None:
    # classes 0 normal, 1 pneumonia, 2 tuberculosis; rows 2 and 3 are filed as pneumonia here, and the
    # publisher filed row 2 as normal (a conflict) and row 3 as pneumonia (agreement)
    truth = np.array([0, 0, 1, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 2, 0])
    publisher = np.array([-1, -1, 0, 1, -1, -1, -1])
    suspect = np.array([False, False, False, False, False, False, True])
    d = audit.publisher_diagnostics(truth, pred, publisher, suspect, 3)
    assert d["conflicts"] == 1 and d["conflicts_predicted"] == {0: 1}
    assert d["as_filed"] == pytest.approx(audit.macro_f1(truth, pred, 3))
    relabelled = np.array([0, 0, 0, 1, 1, 2, 2])
    assert d["conflicts_relabelled"] == pytest.approx(audit.macro_f1(relabelled, pred, 3))
    assert d["conflicts_relabelled"] > d["as_filed"]  # the model agreed with the publisher
    keep = np.arange(7) != 2
    assert d["conflicts_excluded"] == pytest.approx(audit.macro_f1(truth[keep], pred[keep], 3))
    assert d["conflicts_relabelled_suspect_excluded"] == pytest.approx(1.0)  # every remaining row right
    # without a copy anywhere nothing changes
    none = audit.publisher_diagnostics(truth, pred, np.full(7, -1), np.zeros(7, dtype=bool), 3)
    assert none["conflicts"] == 0 and none["conflicts_relabelled"] == none["as_filed"] == none["conflicts_excluded"]


def _result(probe: float, suspect_acc: float, fixed_f1: float) -> dict:
    s = audit.SUSPECT
    return {
        "probes": {"pixels": {f"normal-512 vs {s}": probe, f"normal-1024 vs {s}": probe, "control": 0.95}},
        "per_group_accuracy": {"test": {s: {"n": 50, "correct": int(50 * suspect_acc), "accuracy": suspect_acc},
                                        "normal-512": {"n": 50, "correct": 45, "accuracy": 0.9}}},
        "macro_f1_test": {"as_shipped": 0.78, "suspect_all_right": fixed_f1, "suspect_excluded": 0.84},
        "duplicates": {"near": {"images_with_copy_in_other_class": {s: 51},
                                "total": {"pairs": 67, "unflagged": 23, "dropped_by_split": 67}}},
        "sub_collections": {s: 328},
    }


def test_conclusion_follows_the_figures() -> None:
    line = audit.conclusion(_result(probe=0.55, suspect_acc=0.33, fixed_f1=0.86))
    assert "looks like normal images" in line and "51 of 328" in line and "drops all of 67" in line
    assert "the model the rest" in line and "33%-33%" in line and "90%-90%" in line
    line = audit.conclusion(_result(probe=0.90, suspect_acc=0.33, fixed_f1=0.93))
    assert "does not look like" in line and "target would be met" in line


def test_card_limit_cites_the_audit_figures_and_says_how_to_run_it_without_them() -> None:
    r = _result(probe=0.561, suspect_acc=0.33, fixed_f1=0.862)
    r["probes"]["pixels"]["control"] = 0.946
    r["duplicates"]["exact"] = {"total": {"pairs": 44, "flagged": 44, "unflagged": 0, "dropped_by_split": 44}}
    r["duplicates"]["near"]["total"]["flagged"] = 44
    r["duplicates"]["near"]["by_class_pair"] = {"normal/tuberculosis": {"pairs": 60}}
    r["duplicates"]["near"]["by_sub_collection_pair"] = {"normal-1024/tuberculosis-512 (unflagged)": 23,
                                                         "normal-512/tuberculosis-512 (flagged)": 33}
    r["per_group_accuracy"] = {split: {audit.SUSPECT: {"n": 50, "correct": 17, "accuracy": 0.34}}
                               for split in ("train", "val", "test")}
    text = " ".join(audit_limit_lines(r))
    for figure in ("0.561", "0.946", "0.862", "0.840", "51 of 328", "67", "34.0%",
                   "(normal-1024/tuberculosis-512: 23)", "looks like normal images"):
        assert figure in text
    assert "normal-512/tuberculosis-512" not in text  # flagged pairs are not listed as unflagged
    assert "stays below 0.90" in text
    r["macro_f1_test"]["suspect_all_right"] = 0.915
    assert "would reach 0.90" in " ".join(audit_limit_lines(r))
    r["probes"]["pixels"][f"normal-512 vs {audit.SUSPECT}"] = 0.9
    assert "is separable from normal images" in " ".join(audit_limit_lines(r))
    assert "python -m tools.cxr3class_audit" in " ".join(audit_limit_lines(None))
