"""`fit` on real shipped data, kept small: a few hundred rows and one to three epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ml.checkpoint import load_checkpoint, save_checkpoint
from ml.config import TrainConfig
from ml.errors import ConfigError, TrainingCancelled
from ml.inference import LoadedModel
from ml.training.loop import fit
from ml.training.reporter import Reporter


def _config(data_dir, **params):
    base = dict(epochs=1, batch_size=32, max_train_samples=256, max_eval_samples=200, lr=2e-3)
    return TrainConfig.parse({"model": params.pop("model", "simple_cnn"), "dataset": "pneumoniamnist",
                              "data_root": str(data_dir / "pneumoniamnist"), "params": {**base, **params}})


def test_resumed_run_gives_the_same_weights_as_a_straight_run(data_dir, tmp_path):
    straight = fit(_config(data_dir, epochs=3), tmp_path / "straight")
    fit(_config(data_dir, epochs=2), tmp_path / "resumed")
    resumed = fit(_config(data_dir, epochs=3), tmp_path / "resumed")  # picks up last.pt after epoch 2
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]  # epochs count from 1
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.report["splits"]["test"]["mean_auroc"] == resumed.report["splits"]["test"]["mean_auroc"]


def test_a_run_checkpointed_when_epochs_counted_from_0_resumes_counting_from_1(data_dir, tmp_path):
    fit(_config(data_dir, epochs=1), tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    old = load_checkpoint(last)  # made to look as last.pt did before epochs counted from 1
    del old["epochs_from"]
    old["epoch"], ts = 0, old["training_state"]
    ts["history"], ts["best_epoch"] = [{**h, "epoch": h["epoch"] - 1} for h in ts["history"]], ts["best_epoch"] - 1
    save_checkpoint(old, last)
    resumed = fit(_config(data_dir, epochs=2), tmp_path / "run")
    assert [h["epoch"] for h in resumed.history] == [1, 2] and resumed.best_epoch in (1, 2)


def test_run_folder_describes_itself(data_dir, tmp_path):
    result = fit(_config(data_dir, epochs=2), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "model.pt", "report.json",
                 "training_curves.png", "roc_val.png", "roc_test.png", "confusion_test.png"):
        assert (run / name).is_file(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["split"]) for m in lines] == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    assert result.best_epoch in (1, 2) and result.report["best_epoch"] == result.best_epoch
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt["labels"] == ["Pneumonia"] and ckpt["task"] == "binary"
    assert ckpt["model_name"] == "simple_cnn" and len(ckpt["thresholds"]) == 1
    assert ckpt["metrics"]["test"]["mean_auroc"] == pytest.approx(result.report["splits"]["test"]["mean_auroc"])
    assert ckpt["data_config"]["input_size"] == 28 and "training_state" not in ckpt
    assert "training_state" in load_checkpoint(run / "last.pt")
    # a short run on real data already separates the classes
    assert result.report["splits"]["test"]["mean_auroc"] > 0.8
    loaded = LoadedModel.from_checkpoint(run / "model.pt")
    probs = loaded.predict_images([np.random.default_rng(0).uniform(size=(64, 80)).astype(np.float32)])
    assert probs.shape == (1, 1) and 0 <= probs[0, 0] <= 1


class _StopAfter(Reporter):
    def __init__(self, steps: int) -> None:
        self.steps, self.seen, self.epochs_done = steps, 0, []

    def on_step(self, **kw) -> None:
        self.seen += 1

    def on_epoch_end(self, *, epoch, metrics) -> None:
        self.epochs_done.append(epoch)

    def should_stop(self) -> bool:
        return self.seen >= self.steps


def test_cancellation_stops_within_an_epoch_and_keeps_the_last_checkpoint(data_dir, tmp_path):
    reporter = _StopAfter(steps=8 + 2)  # 8 steps per epoch: stop during the second epoch
    with pytest.raises(TrainingCancelled):
        fit(_config(data_dir, epochs=5, cancel_check_every=1), tmp_path / "run", reporter=reporter)
    assert reporter.epochs_done == [1]
    assert reporter.seen == 10
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_frozen_warm_up_trains_the_head_first_then_everything(data_dir, tmp_path):
    snapshots = []

    class Snap(Reporter):
        def on_checkpoint(self, *, path, kind, epoch, metrics) -> None:
            if kind == "last":
                snapshots.append(load_checkpoint(path)["state_dict"])

    fit(_config(data_dir, epochs=2, freeze_epochs=1, seed=3), tmp_path / "run", reporter=Snap())
    from ml.models import create_model

    torch.manual_seed(3)  # fit seeds the same way before building the model
    fresh = create_model("simple_cnn", num_classes=1).state_dict()
    convs = [k for k in fresh if k.endswith(".weight") and fresh[k].ndim == 4]
    heads = [k for k in fresh if k.startswith("classifier") and k.endswith("weight")]
    after_warmup, after_unfreeze = snapshots
    assert convs and heads
    assert all(torch.equal(fresh[k], after_warmup[k]) for k in convs)  # backbone frozen in epoch 1
    assert any(not torch.equal(fresh[k], after_warmup[k]) for k in heads)  # head trained
    assert all(not torch.equal(after_warmup[k], after_unfreeze[k]) for k in convs)  # all trained in epoch 2


def test_gradient_accumulation_matches_a_larger_batch(data_dir, tmp_path):
    """vit_tiny has no BatchNorm, so 2 x 16 accumulated equals one batch of 32 (up to float error)."""
    common = dict(model="vit_tiny", epochs=1, max_train_samples=64, augment={"enabled": False},
                  model_kwargs={"depth": 1}, scheduler="none")
    fit(_config(data_dir, batch_size=32, **common), tmp_path / "big")
    fit(_config(data_dir, batch_size=16, accum_steps=2, **common), tmp_path / "accum")
    a = load_checkpoint(tmp_path / "big" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "accum" / "last.pt")["state_dict"]
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-4
    c = fit(_config(data_dir, batch_size=16, **{**common, "epochs": 1}), tmp_path / "small")
    small = load_checkpoint(c.run_dir / "last.pt")["state_dict"]
    assert max(float((a[k] - small[k]).abs().max()) for k in a) > 1e-3  # not accumulating differs


def test_bf16_autocast_on_cpu_and_focal_loss_with_positive_weights(data_dir, tmp_path):
    result = fit(_config(data_dir, amp="bf16", loss="focal", pos_weight=True), tmp_path / "run")
    assert np.isfinite(result.history[0]["train"]["loss"])
    with pytest.raises(Exception, match="fp16 needs CUDA|'fp16' needs CUDA"):
        fit(_config(data_dir, amp="fp16"), tmp_path / "fp16")


def test_early_stopping_ends_a_run_that_stopped_improving(data_dir, tmp_path):
    result = fit(_config(data_dir, epochs=10, lr=1e-9, early_stopping_patience=1, scheduler="none"), tmp_path / "r")
    assert len(result.history) < 10


def test_multilabel_on_the_chestmnist_layout(data_dir, tmp_path):
    config = TrainConfig.parse({
        "model": "simple_cnn", "dataset": "chestmnist",
        "data_root": str(data_dir / "chestmnist-nih1000" / "nih1000_chestmnist_format_28.npz"),
        "params": {"epochs": 1, "batch_size": 64, "pos_weight": True},
    })
    result = fit(config, tmp_path / "run")
    test = result.report["splits"]["test"]
    assert len(test["per_class"]) == 14 and test["n"] == 177
    assert test["per_class"]["Hernia"]["auroc"] is None  # no positives in this test split
    assert 0 <= test["micro_f1"] <= 1


def test_multiclass_on_real_images_in_class_folders(data_dir, tmp_path):
    config = TrainConfig.parse({
        "model": "simple_cnn", "dataset": "folder", "data_root": str(data_dir / "kermany-sample"),
        "dataset_options": {"split": "stratified", "fractions": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "params": {"epochs": 1, "batch_size": 8, "input_size": 64},
    })
    result = fit(config, tmp_path / "run")
    test = result.report["splits"]["test"]
    assert test["task"] == "multiclass" and np.asarray(test["confusion_matrix"]).sum() == test["n"]
    assert (tmp_path / "run" / "confusion_test.png").is_file()
    assert load_checkpoint(tmp_path / "run" / "model.pt")["data_config"]["input_size"] == 64


def test_a_run_is_calibrated_on_validation_and_served_calibrated(data_dir, tmp_path):
    from ml.checkpoint import model_from_checkpoint
    from ml.evaluation.calibration import scaled

    config = TrainConfig.parse({
        "model": "simple_cnn", "dataset": "chestmnist",
        "data_root": str(data_dir / "chestmnist-nih1000" / "nih1000_chestmnist_format_28.npz"),
        "params": {"epochs": 1, "batch_size": 64},
    })
    result = fit(config, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    cal = ckpt["calibration"]
    # simple_cnn's head ends in its logits layer: a temperature and a bias per label (Platt scaling)
    assert cal["method"] == "platt" and cal["fitted_on"] == "val" and len(cal["temperatures"]) == 14
    assert all(t > 0 for t in cal["temperatures"]) and any(t != 1.0 for t in cal["temperatures"])
    test = ckpt["metrics"]["test"]
    for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
        assert 0 <= test[key] <= 1, key
    # fitted on val, so val's NLL-optimal temperatures never make val's Brier much worse
    val = cal["splits"]["val"]
    assert val["brier_after"] <= val["brier_before"] + 0.01
    assert (tmp_path / "run" / "reliability_test.png").is_file()
    assert result.report["calibration"]["splits"]["test"]["reliability_after"]["counts"]
    # served probabilities are the raw model's scaled by the temperatures
    loaded = LoadedModel.from_checkpoint(tmp_path / "run" / "model.pt")
    assert loaded.calibrated
    image = np.random.default_rng(0).uniform(size=(28, 28)).astype(np.float32)
    raw = model_from_checkpoint(ckpt, calibrated=False)
    with torch.no_grad():
        raw_probs = torch.sigmoid(raw(loaded.preprocess.batch([image]))).numpy()
    expected = scaled(raw_probs, np.array(cal["temperatures"]), "multilabel", np.array(cal["biases"]))
    np.testing.assert_allclose(loaded.predict_images([image]), expected, atol=1e-5)


def test_a_weight_averaged_run_validates_and_ships_the_average_and_resumes_it_exactly(data_dir, tmp_path):
    straight = fit(_config(data_dir, epochs=3, ema_decay=0.9), tmp_path / "straight")
    fit(_config(data_dir, epochs=2, ema_decay=0.9), tmp_path / "resumed")
    fit(_config(data_dir, epochs=3, ema_decay=0.9), tmp_path / "resumed")
    last = {k: load_checkpoint(tmp_path / k / "last.pt") for k in ("straight", "resumed")}
    avg = {k: v["training_state"]["weight_average"] for k, v in last.items()}
    assert avg["straight"]["updates"] == avg["resumed"]["updates"] == 3 * 8  # 256 rows / 32 a batch, 3 epochs
    assert all(torch.equal(avg["straight"]["state_dict"][n], avg["resumed"]["state_dict"][n])
               for n in avg["straight"]["state_dict"])
    # the average is not the trained weights, and it is what was kept as best and shipped
    trained, averaged = last["straight"]["state_dict"], avg["straight"]["state_dict"]
    assert not all(torch.equal(trained[n], averaged[n]) for n in trained)
    best = load_checkpoint(tmp_path / "straight" / "best.pt")["state_dict"]
    shipped = load_checkpoint(tmp_path / "straight" / "model.pt")["state_dict"]
    assert all(torch.equal(best[n], shipped[n]) for n in best)
    if straight.best_epoch == 3:
        assert all(torch.equal(averaged[n], shipped[n]) for n in averaged)
    # resuming an averaged run without the average (or the reverse) would silently change what is kept
    fit(_config(data_dir, epochs=1), tmp_path / "plain-then-averaged")
    with pytest.raises(ConfigError, match="without ema_decay"):
        fit(_config(data_dir, epochs=2, ema_decay=0.9), tmp_path / "plain-then-averaged")


def test_weight_average_follows_the_formula_with_its_warm_up(tmp_path):
    from ml.training.ema import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    average = WeightAverage(model, decay=0.99)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    average.update(model)  # first update: decay min(0.99, 1/10) = 0.1
    assert torch.allclose(average.module[0].weight, 0.1 * start + 0.9 * (start + 1))
    assert int(average.module[1].num_batches_tracked) == 5  # integer buffers are copied
    assert not average.module.training and not average.module[0].weight.requires_grad
    with pytest.raises(ValueError):
        WeightAverage(model, decay=1.0)
