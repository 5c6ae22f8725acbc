import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ml.evaluation.metrics import (
    bootstrap_ci,
    choose_thresholds,
    classification_report,
    per_class_auroc,
)


def _data(n=300, labels=3, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, labels)) < 0.3).astype(np.float64)
    p = np.clip(y * 0.3 + rng.uniform(size=(n, labels)) * 0.7, 0, 1)
    return p, y


def test_auroc_matches_sklearn_with_unknown_labels_masked():
    p, y = _data()
    y_nan = y.copy()
    y_nan[::7, 1] = np.nan
    ours = per_class_auroc(p, y_nan)
    known = ~np.isnan(y_nan[:, 1])
    assert ours[0] == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]), abs=1e-6)
    assert ours[1] == pytest.approx(roc_auc_score(y[known, 1], p[known, 1]), abs=1e-6)


def test_auroc_is_nan_for_a_label_without_positives():
    p, y = _data()
    y[:, 2] = 0
    assert np.isnan(per_class_auroc(p, y)[2])


def test_f1_threshold_is_the_best_cut():
    p, y = _data(seed=2)
    t = choose_thresholds(p, y, "f1")
    for j in range(y.shape[1]):
        ours = f1_score(y[:, j], p[:, j] >= t[j])
        best = max(f1_score(y[:, j], p[:, j] >= c) for c in np.unique(p[:, j]))
        assert ours == pytest.approx(best, abs=1e-9)


def test_youden_threshold_maximises_j():
    p, y = _data(seed=3)
    t = choose_thresholds(p, y, "youden")

    def j_stat(c):
        d = p[:, 0] >= c
        return d[y[:, 0] == 1].mean() - d[y[:, 0] == 0].mean()

    assert j_stat(t[0]) == pytest.approx(max(j_stat(c) for c in np.unique(p[:, 0])), abs=1e-9)


def test_multilabel_report_has_macro_and_micro():
    p, y = _data(seed=4)
    t = np.full(3, 0.5)
    rep = classification_report(p, y, "multilabel", ["a", "b", "c"], t)
    d = p >= 0.5
    assert rep["micro_f1"] == pytest.approx(f1_score(y, d, average="micro"), abs=1e-9)
    assert rep["macro_f1"] == pytest.approx(f1_score(y, d, average="macro"), abs=1e-9)
    assert set(rep["per_class"]) == {"a", "b", "c"}
    assert set(rep["roc_curves"]) == {"a", "b", "c"}


def test_multiclass_report_uses_argmax_and_counts_the_confusion():
    y = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2],
                  [0.1, 0.2, 0.7]])
    rep = classification_report(p, y, "multiclass", ["n", "p", "t"], np.full(3, 0.5))
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert rep["macro_f1"] == pytest.approx(f1_score(y.argmax(1), p.argmax(1), average="macro"))


def test_binary_report_accuracy_at_threshold_and_half():
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    p = np.array([[0.1], [0.45], [0.4], [0.9]])
    rep = classification_report(p, y, "binary", ["Pneumonia"], np.array([0.3]))
    assert rep["accuracy"] == pytest.approx(0.75)
    assert rep["accuracy_at_0.5"] == pytest.approx(0.75)
    assert rep["confusion_matrix"] == [[1, 1], [0, 2]]


def test_bootstrap_interval_brackets_the_estimate():
    p, y = _data(n=400, seed=5)
    lo, hi = bootstrap_ci(p, y, per_class_auroc, n_resamples=200, seed=0)
    point = per_class_auroc(p, y)
    assert np.all(lo <= point) and np.all(point <= hi)
    assert np.all(hi - lo < 0.2)


def test_youden_mid_takes_the_middle_of_the_near_best_cuts():
    # Scores overlap evenly on [0.4, 0.6]: every cut there has the same J (0.33). 'youden' takes the
    # edge of that plateau, 'youden_mid' its middle; both keep J near the max.
    neg, pos = np.linspace(0, 0.6, 101), np.linspace(0.4, 1, 101)
    p = np.r_[neg, pos][:, None]
    y = np.r_[np.zeros(101), np.ones(101)][:, None]

    def j_stat(c):
        return (pos >= c).mean() - (neg >= c).mean()

    edge, mid = choose_thresholds(p, y, "youden")[0], choose_thresholds(p, y, "youden_mid")[0]
    assert abs(edge - 0.5) > 0.08 and mid == pytest.approx(0.5, abs=0.03)
    assert j_stat(mid) >= j_stat(edge) - 0.02


def test_rank_auroc_equals_the_torchmetrics_auroc_with_ties_and_unknowns():
    from ml.evaluation.metrics import rank_auroc

    p, y = _data(seed=4)
    p = np.round(p, 1)  # many ties
    y[:5, 1] = np.nan
    y[:, 2] = 0
    ours, ref = rank_auroc(p, y), per_class_auroc(p, y)
    np.testing.assert_allclose(ours[:2], ref[:2], atol=1e-6)
    assert np.isnan(ours[2]) and np.isnan(ref[2])


def test_sensitivity_policy_takes_the_highest_cut_reaching_the_target():
    # 20 positives scored 0.30..0.97, 20 negatives 0.0..0.38: the cut keeping 95% (19 of 20) of positives
    pos = np.linspace(0.30, 0.97, 20)
    neg = np.linspace(0.0, 0.38, 20)
    p = np.r_[pos, neg][:, None]
    y = np.r_[np.ones(20), np.zeros(20)][:, None]
    t = choose_thresholds(p, y, "sensitivity", target_sensitivity=0.95)[0]
    assert t == pytest.approx(pos[1])
    assert (pos >= t).mean() == pytest.approx(0.95)
    assert choose_thresholds(p, y, "sensitivity", target_sensitivity=1.0)[0] == pytest.approx(pos[0])


def test_report_counts_only_annotated_rows():
    y = np.array([[1, np.nan], [0, 1], [1, 0], [0, np.nan]], dtype=np.float64)
    p = np.array([[0.9, 0.9], [0.2, 0.8], [0.7, 0.1], [0.1, 0.99]])
    report = classification_report(p, y, "multilabel", ["a", "b"], np.array([0.5, 0.5]))
    assert report["per_class"]["b"]["n"] == 2 and report["per_class"]["b"]["support"] == 1
    assert report["per_class"]["b"]["precision"] == 1.0 and report["per_class"]["b"]["auroc"] == 1.0


def _three_classes(n=600, shrink=1.0, seed=0):
    """Softmax-like rows over three classes; class 2's probability shrunk by `shrink` (a model that under-calls it)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[truth]
    p = np.exp(logits)
    p[:, 2] *= shrink
    p /= p.sum(axis=1, keepdims=True)
    return p, np.eye(3)[truth], truth


def test_multiclass_macro_f1_matches_sklearn():
    from ml.evaluation.metrics import multiclass_macro_f1, weighted_argmax

    p, _, truth = _three_classes()
    decision = weighted_argmax(p, None)
    assert multiclass_macro_f1(truth, decision, 3) == pytest.approx(f1_score(truth, decision, average="macro"))
    assert (weighted_argmax(p, np.array([1.0, 1.0, 100.0])) == 2).mean() > 0.9


def test_decision_weights_undo_a_class_the_model_under_calls():
    from ml.evaluation.metrics import fit_decision_weights, multiclass_macro_f1, weighted_argmax

    p, y, truth = _three_classes(shrink=0.2)
    w = fit_decision_weights(p, y)
    assert w[0] == 1.0 and w[2] > 2.5 and 0.5 < w[1] < 2  # class 2 raised back, about by the shrink
    assert multiclass_macro_f1(truth, weighted_argmax(p, w), 3) > multiclass_macro_f1(truth, p.argmax(axis=1), 3) + 0.05


def test_decision_weights_stay_argmax_when_nothing_is_gained():
    from ml.evaluation.metrics import fit_decision_weights

    truth = np.arange(90) % 3
    p = np.full((90, 3), 0.1)
    p[np.arange(90), truth] = 0.8  # every row right by arg-max, and by a wide band of weights around it
    assert fit_decision_weights(p, np.eye(3)[truth]).tolist() == [1.0, 1.0, 1.0]


def test_decision_weights_for_more_classes_go_round_each_weight():
    from ml.evaluation.metrics import fit_decision_weights

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 800)
    p = np.exp(rng.normal(size=(800, 4)) + 1.5 * np.eye(4)[truth])
    p[:, 3] *= 0.2
    w = fit_decision_weights(p / p.sum(axis=1, keepdims=True), np.eye(4)[truth])
    assert w[0] == 1.0 and w[3] > 2.5 and all(0.5 < v < 2 for v in w[1:3])
