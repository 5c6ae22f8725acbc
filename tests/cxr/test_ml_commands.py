"""The `cxr` CLI's ML commands, run in-process through `main()` on real shipped data."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cxr.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data",
                 str(data_dir / "pneumoniamnist"), "--epochs", "1", "--out", str(out), "--quiet",
                 "--set", "max_train_samples=256", "--set", "max_eval_samples=128"])
    assert code == 0
    return out


def test_train_writes_a_run_folder_and_prints_the_figures(trained, capsys):
    assert (trained / "model.pt").is_file() and (trained / "report.json").is_file()
    report = json.loads((trained / "report.json").read_text())
    assert set(report["splits"]) == {"val", "test"} and report["splits"]["test"]["n"] == 128


def test_train_from_a_recipe_with_overrides(tmp_path, data_dir, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "vgg_small"\ndataset = "pneumoniamnist"\ndata_root = "{data_dir / "pneumoniamnist"}"\n'
                      "[params]\nepochs = 5\nbatch_size = 32\n")
    code = main(["train", "--config", str(recipe), "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "max_train_samples=64", "--set", "max_eval_samples=64", "--set", "augment.hflip=true"])
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]
    assert config["model"] == "vgg_small" and config["params"]["epochs"] == 1
    assert config["params"]["augment"]["hflip"] is True and config["params"]["batch_size"] == 32
    assert "test: n=64" in capsys.readouterr().out


def test_predict_prints_probabilities_as_json(trained, data_dir, capsys):
    image = data_dir / "samples" / "person1951_bacteria_4882.jpeg"
    assert main(["predict", str(image), "--checkpoint", str(trained / "model.pt"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert set(result["probabilities"]) == {"Pneumonia"} and 0 <= result["probabilities"]["Pneumonia"] <= 1


def test_gradcam_writes_an_overlay_of_the_image_size(trained, data_dir, tmp_path):
    image = data_dir / "samples" / "nih_cxr_1024.png"
    out = tmp_path / "overlay.png"
    assert main(["gradcam", str(image), "--checkpoint", str(trained / "model.pt"), "--target", "Pneumonia",
                 "--method", "gradcam++", "--out", str(out)]) == 0
    assert Image.open(out).size == Image.open(image).size


def test_evaluate_uses_the_stored_thresholds(trained, data_dir, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(trained / "model.pt"), "--dataset", "pneumoniamnist",
                 "--data", str(data_dir / "pneumoniamnist"), "--split", "val", "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    stored = json.loads((trained / "report.json").read_text())["thresholds"]
    assert report["thresholds"] == pytest.approx(stored)
    assert "Pneumonia" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "nope", "--dataset", "pneumoniamnist", "--data", "data/pneumoniamnist"],
         "unknown model 'nope'"),
        (["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data", "/nonexistent"],
         "/nonexistent"),
        (["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data", "x", "--set", "epochs=-1"],
         "params.epochs"),
        (["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data", "x", "--set", "bogus"],
         "KEY=VALUE"),
        (["predict", "missing.png", "--checkpoint", "missing.pt"], "checkpoint not found"),
    ],
)
def test_errors_are_one_line(argv, message, capsys, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_predict_reports_a_non_image_and_exits_1(trained, tmp_path, capsys):
    bogus = tmp_path / "note.png"
    bogus.write_text("not an image")
    assert main(["predict", str(bogus), "--checkpoint", str(trained / "model.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"{bogus}: error: ") and err[-1] == "1 of 1 image(s) could not be read"


def test_architectures_and_datasets_are_listed(capsys):
    assert main(["architectures"]) == 0 and main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("densenet121_gem", "vit_tiny", "cxr_cnn5", "chexpert", "nih", "folder"):
        assert name in out


def test_predict_prints_the_input_check_findings_and_warnings(trained, data_dir, tmp_path, capsys):
    xray = data_dir / "samples" / "nih_cxr_1024.png"
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - __import__("numpy").asarray(Image.open(xray).convert("L"))).save(inverted)
    assert main(["predict", str(xray), str(inverted), "--checkpoint", str(trained / "model.pt")]) == 0
    out = capsys.readouterr().out
    assert "the model sees 28x28" in out and "input check: looks like a chest X-ray" in out
    assert "input check: FLAGGED" in out and "warning: This image may not be a chest X-ray" in out
    assert "threshold" in out and ("positive (" in out or "negative (" in out) and "test AUROC" in out
    assert main(["predict", str(inverted), "--checkpoint", str(trained / "model.pt"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["input_check"]["in_distribution"] is False and result["input_size"] == [28, 28]
    assert result["calibrated"] is True and [f["label"] for f in result["findings"]] == ["Pneumonia"]


def test_calibrate_refits_a_checkpoint_without_retraining(trained, data_dir, tmp_path, capsys):
    from ml.checkpoint import load_checkpoint

    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", str(trained / "model.pt"), "--dataset", "pneumoniamnist", "--data",
                 str(data_dir / "pneumoniamnist"), "--out", str(out), "--report", str(tmp_path / "rep")]) == 0
    text = capsys.readouterr().out
    assert "fitted on val" in text and "test (n=624): ECE" in text
    before, after = load_checkpoint(trained / "model.pt"), load_checkpoint(out)
    assert all(torch_equal for torch_equal in
               (before["state_dict"][k].equal(after["state_dict"][k]) for k in before["state_dict"]))
    assert after["calibration"]["fitted_on"] == "val" and "ece_after" in after["metrics"]["test"]
    assert (tmp_path / "rep" / "reliability_test.png").is_file()


def test_calibrate_val_only_leaves_the_test_split_unread(trained, data_dir, tmp_path, capsys):
    from ml.checkpoint import load_checkpoint

    out = tmp_path / "candidate.pt"
    assert main(["calibrate", str(trained / "model.pt"), "--dataset", "pneumoniamnist", "--data",
                 str(data_dir / "pneumoniamnist"), "--out", str(out), "--val-only"]) == 0
    text = capsys.readouterr().out
    assert "val (n=" in text and "test (n=" not in text
    after = load_checkpoint(out)
    assert set(after["calibration"]["splits"]) == {"val"} and after["calibration"]["fitted_on"] == "val"
    assert after["metrics"].get("test") == load_checkpoint(trained / "model.pt")["metrics"].get("test")  # as trained


def test_calibrate_on_data_without_a_test_split_keeps_the_policy_s_own_target(tmp_path, data_dir, capsys):
    """A recipe whose test is another collection (the Kermany models') has train and val only; a 'sensitivity'
    policy's target comes from the training parameters, not the default 0.95."""
    import numpy as np

    from ml.checkpoint import load_checkpoint
    from ml.data import create_dataset
    from ml.evaluation.metrics import choose_thresholds
    from ml.inference import LoadedModel

    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "simple_cnn"\ndataset = "folder"\ndata_root = "{data_dir / "kermany-sample"}"\n'
                      '[dataset_options]\nsplit = "stratified"\nfractions = { train = 0.5, val = 0.5 }\n'
                      'task = "binary"\npositive = "PNEUMONIA"\n'
                      '[params]\nepochs = 1\nbatch_size = 8\nthreshold_policy = "sensitivity"\n'
                      "threshold_sensitivity = 0.5\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(recipe), "--out", str(run), "--quiet"]) == 0
    assert main(["calibrate", str(run / "model.pt"), "--config", str(recipe)]) == 0
    assert "val (n=" in capsys.readouterr().out
    ckpt = load_checkpoint(run / "model.pt")
    assert set(ckpt["calibration"]["splits"]) == {"val"}
    loaded = LoadedModel.from_checkpoint(run / "model.pt")
    val = create_dataset("folder", data_dir / "kermany-sample", split="stratified",
                         fractions={"train": 0.5, "val": 0.5}, task="binary", positive="PNEUMONIA").split("val")
    probs = loaded.predict_images([val.images.load(i) for i in range(len(val))])
    expected = choose_thresholds(probs, val.labels, "sensitivity", target_sensitivity=0.5)
    assert np.allclose(ckpt["thresholds"], expected, atol=1e-6)
