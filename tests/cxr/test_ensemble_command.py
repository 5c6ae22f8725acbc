"""`cxr ensemble`: separately trained runs joined into one checkpoint that averages their logits, then
calibrated, explained and predicted with like any model (real training on the shipped PneumoniaMNIST)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxr.cli import main
from ml.checkpoint import load_checkpoint, model_from_checkpoint
from ml.data import create_dataset
from ml.inference import LoadedModel


def _train(out, data_dir, *extra: str) -> None:
    assert main(["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data",
                 str(data_dir / "pneumoniamnist"), "--epochs", "1", "--out", str(out), "--quiet",
                 "--set", "max_train_samples=256", "--set", "max_eval_samples=128", *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("members")
    for seed in (0, 1, 2):
        _train(root / f"seed{seed}", data_dir, "--seed", str(seed))
    return root


def test_the_ensemble_averages_its_members_logits(runs, data_dir, tmp_path, capsys):
    members = [runs / "seed0" / "model.pt", runs / "seed1" / "model.pt"]
    out = tmp_path / "ensemble.pt"
    assert main(["ensemble", *map(str, members), "--out", str(out)]) == 0
    assert "2 x simple_cnn" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt["model_name"] == "ensemble" and ckpt["thresholds"] is None and "calibration" not in ckpt
    assert [m["seed"] for m in ckpt["train_config"]["ensemble_members"]] == [0, 1]

    loaded = LoadedModel.from_checkpoint(out)
    images = create_dataset("pneumoniamnist", data_dir / "pneumoniamnist").split("val")
    x = loaded.preprocess.batch([images.images.load(i) for i in range(8)])
    singles = [model_from_checkpoint(load_checkpoint(p), calibrated=False) for p in members]
    with torch.no_grad():
        expected = torch.stack([m(x) for m in singles]).mean(dim=0)
        got = loaded.model(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(singles[0](x), singles[1](x))  # two seeds, two models


def test_an_ensemble_grows_by_a_new_seed_keeping_its_members(runs, data_dir, tmp_path, capsys):
    pair = tmp_path / "pair.pt"
    assert main(["ensemble", str(runs / "seed0" / "model.pt"), str(runs / "seed1" / "model.pt"), "--out", str(pair)]) == 0
    assert main(["calibrate", str(pair), "--dataset", "pneumoniamnist", "--data", str(data_dir / "pneumoniamnist")]) == 0
    trio = tmp_path / "trio.pt"
    assert main(["ensemble", str(pair), str(runs / "seed2" / "model.pt"), "--out", str(trio)]) == 0
    assert "3 x simple_cnn" in capsys.readouterr().out
    ckpt = load_checkpoint(trio)
    records = ckpt["train_config"]["ensemble_members"]
    assert [m["seed"] for m in records] == [0, 1, 2]
    assert [m.get("from_ensemble") for m in records] == [str(pair), str(pair), None]
    assert records[0]["sha256"] == load_checkpoint(pair)["train_config"]["ensemble_members"][0]["sha256"]
    assert "calibration" not in ckpt and ckpt["thresholds"] is None  # the pair's calibration is not carried over

    loaded = LoadedModel.from_checkpoint(trio)
    images = create_dataset("pneumoniamnist", data_dir / "pneumoniamnist").split("val")
    x = loaded.preprocess.batch([images.images.load(i) for i in range(8)])
    singles = [model_from_checkpoint(load_checkpoint(runs / f"seed{s}" / "model.pt"), calibrated=False) for s in range(3)]
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), torch.stack([m(x) for m in singles]).mean(dim=0), atol=1e-5)

    too_many = [str(trio)] * 3  # 9 members
    assert main(["ensemble", *too_many, "--out", str(tmp_path / "big.pt")]) == 2
    assert "at most 8" in capsys.readouterr().err


def test_a_joined_ensemble_is_calibrated_and_explained_like_any_model(runs, data_dir, tmp_path, capsys):
    out = tmp_path / "ensemble.pt"
    assert main(["ensemble", str(runs / "seed0" / "model.pt"), str(runs / "seed1" / "model.pt"),
                 "--out", str(out)]) == 0
    assert main(["calibrate", str(out), "--dataset", "pneumoniamnist", "--data", str(data_dir / "pneumoniamnist")]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt["calibration"]["fitted_on"] == "val" and ckpt["thresholds"] != [0.5]
    overlay = tmp_path / "cam.png"
    sample = data_dir / "samples" / "NORMAL2-IM-1438-0001.jpeg"
    assert main(["gradcam", str(sample), "--checkpoint", str(out), "--out", str(overlay)]) == 0
    assert overlay.stat().st_size > 1000


def test_members_that_differ_are_refused_naming_what_differs(runs, data_dir, tmp_path, capsys):
    other = tmp_path / "wide"
    _train(other, data_dir, "--set", "model_kwargs.widths=[8,16,32]")
    code = main(["ensemble", str(runs / "seed0" / "model.pt"), str(other / "model.pt"), "--out",
                 str(tmp_path / "e.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "differs" in err and "model_kwargs" in err and not (tmp_path / "e.pt").exists()
    assert main(["ensemble", str(runs / "seed0" / "model.pt"), "--out", str(tmp_path / "e.pt")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_the_average_layer_gives_the_mean_and_cams_cover_every_member():
    from ml.explain.gradcam import compute_cams
    from ml.explain.split import split_at_cam_layer, split_cams
    from ml.models import create_model

    torch.manual_seed(0)
    model = create_model("ensemble", num_classes=3, member="resnet18_narrow", count=3).eval()
    assert model.cam_layer_names() == [f"members.{i}.layer4" for i in range(3)]
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), torch.stack([m(x) for m in model.members]).mean(0), atol=1e-6)
    split = split_at_cam_layer(model)
    values = list(split.trunk(x))
    assert len(split.layers) == 3 and all(v.ndim == 4 for v in values[:3])
    fast = split_cams(split, values, [0, 2], (64, 64))
    hooks = compute_cams(model, x, [0, 2])
    for a, b in zip(fast, hooks, strict=True):
        assert np.abs(a - b).max() < 1e-4
