"""Grad-CAM through a model cut at its CAM layer gives pytorch-grad-cam's maps, from any trunk runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml.errors import ModelError
from ml.explain.gradcam import compute_cams
from ml.explain.split import rest_logits, split_at_cam_layer, split_cams
from ml.models import CXRModel, create_model, list_models
from ml.models.base import ModelConfig
from ml.runtime import build_runtime

CANNOT_BE_CUT = {"vit_tiny"}  # its forward checks token shapes in Python: fx cannot trace it
SIDE = {"densenet121": 96, "densenet121_gem": 96, "cxr_cnn5": 96, "squeezenet1_1": 96}  # smaller inputs, same maths


def _model_and_input(name: str) -> tuple[CXRModel, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    side = SIDE.get(name, model.cfg.input_size)
    return model, torch.randn(1, model.cfg.in_chans, side, side)


@pytest.mark.parametrize("name", sorted(set(list_models()) - CANNOT_BE_CUT))
def test_the_cut_model_gives_the_same_logits_and_the_hooks_maps(name: str) -> None:
    model, x = _model_and_input(name)
    split = split_at_cam_layer(model)
    values = split.trunk(x)
    with torch.no_grad():
        assert torch.allclose(rest_logits(split, values), model(x), atol=1e-5)
    targets = [0, 3, 1]
    side = x.shape[-1]
    ours = split_cams(split, values, targets, (side, side))
    theirs = compute_cams(model, x, targets)
    assert len(ours) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (side, side) and a.dtype == np.float32
        assert np.abs(a - b).max() < 1e-4
    assert all(p.grad is None for p in model.parameters())  # only the layer's output got a gradient


@pytest.mark.parametrize("name", sorted(CANNOT_BE_CUT))
def test_a_model_that_cannot_be_traced_is_refused_with_the_reason(name: str) -> None:
    model, _ = _model_and_input(name)
    with pytest.raises(ModelError, match="cannot trace"):
        split_at_cam_layer(model)


class _Skip(CXRModel):
    """A residual branch skips the CAM layer, and the head reads a parameter directly: the rest needs a
    value from before the cut and a parameter besides the layer's output."""

    def __init__(self, called_twice: bool = False) -> None:
        super().__init__()
        self.cfg = ModelConfig(name="skip", input_size=16, num_classes=3, cam_layer="block.conv")
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = nn.Sequential()
        self.block.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8).view(1, 8, 1, 1))
        self.classifier = nn.Linear(8, 3)
        self.called_twice = called_twice

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        stem = torch.relu(self.stem(x))
        out = self.block.conv(stem)
        if self.called_twice:
            out = self.block.conv(out)
        return torch.relu(out * self.scale + stem)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features.mean(dim=(2, 3)))


def test_values_that_skip_the_layer_travel_from_the_trunk_to_the_rest() -> None:
    torch.manual_seed(1)
    model, x = _Skip().eval(), torch.randn(1, 1, 16, 16)
    split = split_at_cam_layer(model)
    values = split.trunk(x)
    assert len(values) == 2  # the layer's output, then the stem the residual adds back
    assert torch.equal(values[0], model.block.conv(torch.relu(model.stem(x))))
    with torch.no_grad():
        assert torch.allclose(split(x), model(x), atol=1e-6)
    for a, b in zip(split_cams(split, values, [0, 2], (16, 16)), compute_cams(model, x, [0, 2]), strict=True):
        assert np.abs(a - b).max() < 1e-4


def test_a_layer_called_twice_is_refused() -> None:
    with pytest.raises(ModelError, match="called 2 times"):
        split_at_cam_layer(_Skip(called_twice=True))


@pytest.mark.parametrize("runtime", ["onnxruntime", "channels_last"])
def test_the_trunk_runs_in_another_runtime_and_gives_the_same_map(runtime: str) -> None:
    model, x = _model_and_input("densenet121")
    split = split_at_cam_layer(model)
    fast = build_runtime(runtime, split.trunk, x)
    values, reference = fast(x), split.trunk(x)
    assert isinstance(values, tuple) and len(values) == len(reference) == 1
    assert torch.allclose(values[0], reference[0], atol=1e-4)
    side = x.shape[-1]
    [ours], [theirs] = split_cams(split, values, [2], (side, side)), compute_cams(model, x, [2])
    assert np.abs(ours - theirs).max() < 1e-3


def test_a_trace_waits_for_model_runs_on_other_threads_and_keeps_new_ones_out():
    """fx patches nn.Module.__call__ for the whole process while it traces: without the guard, a forward pass
    on another thread during a trace fails ("module is not installed as a submodule")."""
    import threading

    from ml.explain.split import TRACE_GUARD

    model = create_model("densenet121", num_classes=2).eval()
    other = create_model("simple_cnn", num_classes=2).eval()
    x = torch.zeros(1, 1, 28, 28)
    errors: list[BaseException] = []
    stop = threading.Event()

    def run_forever() -> None:
        while not stop.is_set():
            try:
                with TRACE_GUARD.running(), torch.inference_mode():
                    other(x)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=run_forever) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            split_at_cam_layer(model)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:1]
