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
