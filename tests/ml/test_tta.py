"""Test-time views (`ml.tta`): the modes, the crops, and that every path that answers uses the checkpoint's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.tta import averaged_logits, checkpoint_tta, crop_views, tta_mode, views


def test_modes_from_their_names_or_the_old_bool_and_nothing_else() -> None:
    assert [tta_mode(v) for v in (None, False, True, "none", "hflip", "crops")] == [
        "none", "none", "hflip", "none", "hflip", "crops"]
    with pytest.raises(ValueError, match="tta must be one of none, hflip, crops"):
        tta_mode("rotate")


def test_a_checkpoint_answers_with_its_own_views_else_those_its_training_evaluated_with() -> None:
    trained = {"train_config": {"params": {"tta": True}}}
    assert checkpoint_tta(trained) == "hflip"
    assert checkpoint_tta(trained | {"tta": "crops"}) == "crops"
    assert checkpoint_tta({"train_config": None}) == "none"


def test_crops_are_the_centre_and_the_corners_at_ninety_percent_resized_back() -> None:
    x = torch.arange(2 * 20 * 20, dtype=torch.float32).view(2, 1, 20, 20)
    centre, top_left, top_right, bottom_left, bottom_right = crop_views(x)
    assert all(v.shape == x.shape for v in (centre, top_left, top_right, bottom_left, bottom_right))
    expected = F.interpolate(x[..., :18, 2:], size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.equal(top_right, expected)
    assert top_left[0, 0, 0, 0] < centre[0, 0, 0, 0] < bottom_right[0, 0, 0, 0]
    assert top_right[0, 0, 0, 0] < bottom_left[0, 0, 0, 0]  # rows before columns: x[r, c] = 20 r + c
    flat = torch.full((1, 1, 16, 16), 0.3)
    assert all(torch.allclose(v, flat) for v in crop_views(flat))  # a flat image stays flat
    assert len(views(x, "none")) == 1 and torch.equal(views(x, "hflip")[1], x.flip(3)) and len(views(x, "crops")) == 6


def test_averaged_logits_are_the_mean_over_the_views_run_as_one_batch() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2)).eval()
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        model(x)
        expected = torch.stack([model(v) for v in views(x, "crops")]).mean(0)
        assert torch.allclose(averaged_logits(model, x, "crops"), expected, atol=1e-6)
        assert torch.equal(averaged_logits(model, x, "none"), model(x))
        assert not torch.allclose(averaged_logits(model, x, "hflip"), model(x))


def test_a_loaded_model_evaluation_and_calibration_all_use_the_checkpoints_views(tmp_path, data_dir) -> None:
    from ml.checkpoint import load_checkpoint, save_checkpoint
    from ml.config import TrainConfig
    from ml.evaluation.evaluate import calibrate_checkpoint, evaluate_checkpoint
    from ml.inference import LoadedModel
    from ml.training.loop import fit

    config = TrainConfig.parse({"model": "simple_cnn", "dataset": "pneumoniamnist",
                                "data_root": str(data_dir / "pneumoniamnist"),
                                "params": {"epochs": 1, "batch_size": 32, "max_train_samples": 256,
                                           "max_eval_samples": 128}})
    path = fit(config, tmp_path / "run").model_path
    options = {"dataset": "pneumoniamnist", "data_root": data_dir / "pneumoniamnist"}
    out = calibrate_checkpoint(path, out=tmp_path / "crops.pt", tta="crops", val_only=True, **options)
    assert out["tta"] == "crops" and load_checkpoint(tmp_path / "crops.pt")["tta"] == "crops"
    with_views, plain = LoadedModel.from_checkpoint(tmp_path / "crops.pt"), LoadedModel.from_checkpoint(path)
    images = [np.random.default_rng(i).random((28, 28)).astype(np.float32) for i in range(4)]
    x = with_views.preprocess.batch(images)
    with torch.no_grad():
        by_hand = torch.sigmoid(torch.stack([with_views.model(v) for v in views(x, "crops")]).mean(0)).numpy()
    assert np.allclose(with_views.predict_images(images), by_hand, atol=1e-6)
    assert not np.allclose(with_views.predict_images(images), plain.predict_images(images), atol=1e-4)
    assert evaluate_checkpoint(tmp_path / "crops.pt", split="val", max_samples=64, **options)["tta"] == "crops"
    assert evaluate_checkpoint(tmp_path / "crops.pt", split="val", max_samples=64, tta="none", **options)["tta"] == "none"
    ckpt = load_checkpoint(tmp_path / "crops.pt")
    ckpt.pop("tta")
    save_checkpoint(ckpt, tmp_path / "old.pt")  # written before test-time views were stored
    assert LoadedModel.from_checkpoint(tmp_path / "old.pt").tta == "none"


def test_a_recipe_that_evaluates_with_views_yields_a_model_served_with_them(tmp_path, data_dir) -> None:
    import json

    from ml.checkpoint import save_checkpoint
    from ml.config import TrainConfig
    from ml.ensemble import join_checkpoints
    from ml.evaluation.evaluate import calibrate_checkpoint
    from ml.inference import LoadedModel
    from ml.training.loop import fit

    def trained(seed: int) -> Path:
        config = TrainConfig.parse({"model": "simple_cnn", "dataset": "pneumoniamnist",
                                    "data_root": str(data_dir / "pneumoniamnist"),
                                    "params": {"epochs": 1, "batch_size": 32, "max_train_samples": 128,
                                               "max_eval_samples": 64, "seed": seed, "tta": "crops"}})
        return fit(config, tmp_path / f"run{seed}").model_path

    first, second = trained(0), trained(1)
    assert json.loads((first.parent / "report.json").read_text())["tta"] == "crops"  # thresholds chosen on views
    assert LoadedModel.from_checkpoint(first).tta == "crops"
    # joined and calibrated as tools.quality --retrain does, with no views named: the members' recipe decides
    save_checkpoint(join_checkpoints([first, second]), tmp_path / "ensemble.pt")
    report = calibrate_checkpoint(tmp_path / "ensemble.pt", dataset="pneumoniamnist",
                                  data_root=data_dir / "pneumoniamnist", val_only=True)
    assert report["tta"] == "crops" and LoadedModel.from_checkpoint(tmp_path / "ensemble.pt").tta == "crops"
