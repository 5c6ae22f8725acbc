"""Tests for `tools.quality`: the figures (bootstrap intervals, undefined AUROCs), data paths, and what
ships with every model (recipe, card, small weights)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from ml.config import TrainConfig
from ml.data.base import Task
from tools import cards, quality


def _prediction(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = 120
    labels = np.zeros((n, 3), dtype=np.float32)
    labels[:40, 0] = 1  # plenty of positives
    labels[:2, 1] = 1  # two positives: unreliable
    probs = np.clip(labels * 0.4 + rng.random((n, 3)) * 0.6, 0, 1).astype(np.float32)  # label 2: no positives
    return {"probs": probs, "labels": labels, "thresholds": np.full(3, 0.5), "task": Task.MULTILABEL,
            "pathologies": ["A", "B", "C"]}


def test_figures_give_intervals_and_flag_undefined_or_unreliable_aurocs() -> None:
    out = quality.figures(_prediction(), n_resamples=200)
    a, b, c = (out["per_class"][k] for k in "ABC")
    lo, hi = a["auroc_ci"]
    assert lo < a["auroc"] < hi and hi - lo < 0.3 and a["auroc_note"] == ""
    assert b["auroc_note"] == "unreliable: only 2 positives" and b["support"] == 2 and b["auroc_ci"] is None
    assert c["auroc"] is None and c["auroc_ci"] is None and c["auroc_note"].startswith("undefined")
    assert out["mean_auroc"] == pytest.approx((a["auroc"] + b["auroc"]) / 2)
    assert out["bootstrap"] == {"resamples": 200, "seed": 0, "confidence": 0.95, "method": "percentile"}
    assert quality.figures(_prediction(), n_resamples=200) == out  # fixed seed: the same intervals


def test_recipe_paths_into_shared_data_follow_the_data_option(tmp_path: Path) -> None:
    assert quality.resolve_data_root("../shared/data/x/y", tmp_path) == tmp_path / "x" / "y"
    assert quality.resolve_data_root("data/p.npz", tmp_path) == quality.REPO_ROOT / "data" / "p.npz"
    assert quality.resolve_data_root("../shared/data/x", tmp_path, "/else") == Path("/else")


SHIPPED = quality.shipped_models()


def test_the_first_shipped_model_is_the_default_one() -> None:
    assert next(iter(SHIPPED)) == "pneumonia" and len(SHIPPED) >= 4


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_model_has_its_recipe_card_and_small_weights(name: str) -> None:
    entry = SHIPPED[name]
    raw = tomllib.loads((quality.REPO_ROOT / entry["recipe"]).read_text())
    raw.pop("description")
    raw.pop("quality", None)
    assert TrainConfig.parse(raw).params.seed == 0
    weights = quality.REPO_ROOT / "models" / entry["path"]
    members = len(quality.ensemble_members(entry)) or 1
    assert weights.stat().st_size < 5_000_000 * members  # small networks (each member of an ensemble)
    card = (weights.parent / "CARD.md").read_text()
    assert "Not for clinical use" in card and f"python -m tools.quality --model {name}" in card
    assert entry["recipe"] in card and "95% CI" in card


def test_it_measures_a_shipped_model_end_to_end(capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("bench.common.RESULTS", tmp_path)
    assert quality.main(["--model", "nih14", "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "test n=177" in out and "Hernia" in out and "undefined: no positives" in out
    assert (tmp_path / "quality-nih14.json").exists()


def _binary(seed: int, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    labels = (np.arange(400) < 250).astype(np.float32)[:, None]
    probs = np.clip(0.35 * labels + rng.random((400, 1)) * 0.65 + shift * (1 - labels), 0, 1)
    return {"probs": probs.astype(np.float32), "labels": labels, "thresholds": np.array([0.5]),
            "task": Task.BINARY, "pathologies": ["Pneumonia"]}


def test_binary_figures_give_the_operating_point_and_policies_transfer_from_val_to_test() -> None:
    val, test = _binary(0), _binary(1, shift=0.15)  # test negatives score higher, as on Kermany's test
    out = quality.figures(val, n_resamples=50)
    y, d = val["labels"][:, 0] > 0.5, val["probs"][:, 0] >= 0.5
    assert out["sensitivity"] == pytest.approx(d[y].mean()) and out["specificity"] == pytest.approx((~d[~y]).mean())
    rows = {r["policy"]: r for r in quality.policy_table(val, test)}
    assert {"youden", "youden_mid", "f1", "sensitivity 0.95", "fixed 0.5"} <= set(rows)
    assert rows["sensitivity 0.95"]["val"]["sensitivity"] >= 0.95
    assert rows["sensitivity 0.90"]["threshold"] >= rows["sensitivity 0.97"]["threshold"]
    assert rows["fixed 0.5"]["threshold"] == 0.5
    assert rows["youden"]["test"]["specificity"] < rows["youden"]["val"]["specificity"]  # the shift shows


def test_figures_per_dataset_leave_out_what_a_dataset_does_not_annotate() -> None:
    pred = _prediction()
    pred["labels"][60:, 0] = np.nan  # the second dataset does not annotate A
    pred["source"] = np.array(["one"] * 60 + ["two"] * 60)
    out = quality.figures(pred, n_resamples=50)
    assert set(out["by_source"]) == {"one", "two"}
    assert out["by_source"]["one"]["per_class"]["A"]["annotated"] == 60
    assert out["by_source"]["two"]["per_class"]["A"]["annotated"] == 0
    assert out["by_source"]["two"]["per_class"]["A"]["auroc"] is None
    assert out["per_class"]["A"]["annotated"] == 60


def test_a_recipe_may_name_its_own_test_set(tmp_path: Path) -> None:
    recipe = {"dataset": "folder", "data_root": "../shared/data/train", "quality": {
        "test_dataset": "folder", "test_data_root": "../shared/data/test", "test_dataset_options": {"task": "binary"}}}
    test_recipe, root, name = quality.test_source(recipe, tmp_path / "train", tmp_path)
    assert test_recipe == {"dataset": "folder", "dataset_options": {"task": "binary"}} and root == tmp_path / "test"
    assert name == "folder: ../shared/data/test"
    plain = {"dataset": "pneumoniamnist", "data_root": "data/p.npz"}
    assert quality.test_source(plain, tmp_path, tmp_path)[0] is plain


def test_shipping_stores_the_quality_summary_in_the_checkpoint(tmp_path: Path) -> None:
    from app.schemas.quality import ModelQuality
    from ml.checkpoint import load_checkpoint

    source = quality.REPO_ROOT / "models" / "pneumonia" / "model.pt"
    result = {"name": "pneumonia", "test_set": "PneumoniaMNIST official test", "threshold_policy": "youden_mid",
              "test": quality.figures(_binary(2), n_resamples=50)}
    summary = quality.quality_of(result)
    quality.store_quality(source, tmp_path / "model.pt", summary)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert ckpt["metrics"]["quality"]["per_label_auroc"] == summary["per_label_auroc"]
    assert ckpt["metrics"]["test"] == load_checkpoint(source)["metrics"]["test"]  # the rest is kept
    shown = ModelQuality.of(ckpt["metrics"])
    assert shown.test_set == "PneumoniaMNIST official test" and shown.per_label_auroc["Pneumonia"] > 0.5


def test_three_class_figures_from_a_multi_label_model() -> None:
    # truth: 2 normal, 2 pneumonia, 2 tuberculosis; the last tuberculosis row is called pneumonia
    labels = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    probs = np.array([[0.1, 0.1], [0.2, 0.3], [0.9, 0.2], [0.6, 0.1], [0.3, 0.9], [0.8, 0.5]], dtype=np.float32)
    pred = {"labels": labels, "probs": probs, "thresholds": [0.5, 0.5], "pathologies": ["Pneumonia", "Tuberculosis"]}
    out = quality.three_class(pred)
    assert out["n"] == 6 and out["accuracy"] == pytest.approx(5 / 6)
    assert out["f1"]["normal"] == 1.0 and out["f1"]["Tuberculosis"] == pytest.approx(2 / 3)
    assert quality.three_class(pred | {"pathologies": ["Pneumonia", "Effusion"]}) is None


def test_a_candidate_outside_the_manifest_is_measured_on_validation_only(capsys, monkeypatch, tmp_path) -> None:
    import shutil

    monkeypatch.setattr("bench.common.RESULTS", tmp_path)
    run = tmp_path / "nih-candidate"
    run.mkdir()
    shutil.copy(quality.REPO_ROOT / "models" / "nih14" / "model.pt", run / "model.pt")
    assert quality.main(["--recipe", "recipes/nih14-chestmnist.toml", "--run", str(run), "--val-only",
                         "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "test n=94" in out and "VALIDATION split" in out  # the 94 validation rows, not the 177 test rows
    with pytest.raises(SystemExit):
        quality.main(["--recipe", "recipes/nih14-chestmnist.toml", "--run", str(run), "--ship"])


def test_a_run_folder_without_its_model_is_refused_with_a_clear_message(capsys, tmp_path) -> None:
    run = tmp_path / "still-training"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")  # a run whose training has not written model.pt yet
    with pytest.raises(SystemExit) as exc:
        quality.main(["--recipe", "recipes/nih14-chestmnist.toml", "--run", str(run), "--val-only"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "holds no model.pt" in err and "Traceback" not in err


def test_training_seconds_for_a_folder_that_cannot_say_its_epochs_are_refused_with_a_clear_message(
        capsys, tmp_path) -> None:
    import shutil

    run = tmp_path / "joined"
    run.mkdir()
    shutil.copy(quality.REPO_ROOT / "models" / "nih14" / "model.pt", run / "model.pt")  # no report.json beside it
    for argv in (["--recipe", "recipes/nih14-chestmnist.toml", "--run", str(run)], ["--model", "nih14"]):
        with pytest.raises(SystemExit) as exc:
            quality.main([*argv, "--val-only", "--train-seconds", "60"])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "has no report.json" in err and "goes with --run" in err and "Traceback" not in err


def test_an_ensemble_entry_retrains_each_member_with_its_overrides_then_joins_and_calibrates(tmp_path: Path,
                                                                                              data_dir) -> None:
    import json

    from ml.checkpoint import load_checkpoint

    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "simple_cnn"\ndataset = "pneumoniamnist"\ndata_root = "unused"\n[params]\nepochs = 1\n'
                      "batch_size = 64\nmax_train_samples = 256\nmax_eval_samples = 128\nseed = 0\n"
                      'threshold_policy = "youden"\n')
    run = tmp_path / "run"
    members = quality.ensemble_members({"name": "m", "ensemble_members": [{"seed": 3}, {"seed": 3, "params": {
        "lr": 0.01}, "dataset_options": {"size": 28}}]})
    training = quality.retrain_ensemble(recipe, data_dir / "pneumoniamnist", run, threads=1, members=members)
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt["model_name"] == "ensemble" and ckpt["model_kwargs"]["count"] == 2
    assert [m["seed"] for m in ckpt["train_config"]["ensemble_members"]] == [3, 3]
    assert ckpt["calibration"]["fitted_on"] == "val" and ckpt["thresholds"] != [0.5]
    assert list(ckpt["calibration"]["splits"]) == ["val"]  # the test split left for the measurement
    runs = [run / "seed3", run / "seed3-variant1"]
    configs = [json.loads((r / "config.json").read_text())["train_config"] for r in runs]
    assert [c["params"]["lr"] for c in configs] == [1e-3, 0.01]  # the recipe's default, then the override
    assert [c["dataset_options"].get("size") for c in configs] == [None, 28]
    members = [json.loads((r / "training.json").read_text())["train_seconds"] for r in runs]
    assert training["train_seconds"] == pytest.approx(sum(members), abs=0.2)
    assert json.loads((run / "training.json").read_text()) == training


def test_an_ensemble_member_is_a_seed_with_optional_overrides_and_its_card_gives_the_commands() -> None:
    entry = {"name": "m", "recipe": "recipes/r.toml", "ensemble_members": [
        {"seed": 0}, {"seed": 0, "dataset_options": {"weights": {"nih": 0.5}}, "params": {"epochs": 90}}]}
    lines = cards._training_lines({"name": "m", "recipe": "recipes/r.toml"}, entry)
    assert lines[0] == "python -m cxr train --config recipes/r.toml --seed 0 --out runs/m-seed0"
    assert lines[1] == ("python -m cxr train --config recipes/r.toml --seed 0 --dataset-option weights.nih=0.5 "
                        "--set epochs=90 --out runs/m-seed0-variant1")
    assert "runs/m-seed0/model.pt runs/m-seed0-variant1/model.pt" in lines[2]
    for bad in ({"seed": "0"}, {"seed": 1, "lr": 0.1}):
        with pytest.raises(ValueError, match="a seed with optional dataset_options and params"):
            quality.ensemble_members({"name": "m", "ensemble_members": [bad]})
    with pytest.raises(ValueError, match="the same member twice"):
        quality.ensemble_members({"name": "m", "ensemble_members": [{"seed": 1}, {"seed": 2}, {"seed": 1}]})
