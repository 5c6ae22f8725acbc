"""Grad-CAM maps: every method, real targets, hooks always released, gradients even in inference mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ml.explain.gradcam import CAM_METHODS, compute_cams, encode_png, heatmap_grid, overlay
from ml.models import CXRModel, create_model
from ml.transforms import Preprocess, resolve_data_config


def _hooks(model: nn.Module) -> int:
    """Forward and backward hooks still registered anywhere in `model`."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, kind)) for m in model.modules() for kind in kinds)


def _xray(data_dir, model: CXRModel) -> torch.Tensor:  # noqa: ANN001 (pathlib.Path from conftest)
    """A real radiograph, prepared exactly as serving prepares it for `model`: (1, C, S, S)."""
    image = Image.open(data_dir / "samples" / "person1951_bacteria_4882.jpeg").convert("L")
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return Preprocess(resolve_data_config(model.cfg))(pixels)[None]


@pytest.fixture
def densenet() -> CXRModel:
    """A random DenseNet-121 whose class 0 weighs every feature +0.01 and class 1 every feature -0.01.

    Random weights can give near-identical maps for every class; with logit_1 = -logit_0 the gradients
    are exactly opposite, so the maps are ReLU(S) and ReLU(-S) of one signed map S: a real difference.
    """
    torch.manual_seed(0)
    model = create_model("densenet121", num_classes=2).eval()
    linear = model.classifier[-1]
    with torch.no_grad():
        linear.weight[0].fill_(0.01)
        linear.weight[1].fill_(-0.01)
        linear.bias.zero_()
    return model


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
@pytest.mark.parametrize("name", ["vit_tiny", "squeezenet1_1"])  # frozen backbone, 224 px
def test_every_method_runs(name: str, method: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    size = model.cfg.input_size
    cams = compute_cams(model, torch.randn(1, model.cfg.in_chans, size, size), [0, 2], method=method)
    assert len(cams) == 2
    for cam in cams:
        assert cam.shape == (size, size) and cam.dtype == np.float32
        assert np.isfinite(cam).all() and 0.0 <= cam.min() <= cam.max() <= 1.0
    assert _hooks(model) == 0


def test_different_targets_give_different_maps(densenet: CXRModel, data_dir) -> None:  # noqa: ANN001
    """Evidence for class 0 is evidence against class 1: where class 0 is hottest, class 1 is cold.

    (On this image S > 0 everywhere, so class 1's map is all zero: no region argues for it.)
    """
    cam0, cam1 = compute_cams(densenet, _xray(data_dir, densenet), [0, 1])
    assert np.abs(cam0 - cam1).mean() > 0.1
    hottest = np.unravel_index(np.argmax(cam0), cam0.shape)
    assert cam0[hottest] > 0.9 and cam1[hottest] < 0.1


def test_cam_works_inside_inference_mode(densenet: CXRModel, data_dir) -> None:  # noqa: ANN001
    with torch.inference_mode():
        x = _xray(data_dir, densenet)
        inside = compute_cams(densenet, x, [0])[0]
    with torch.no_grad():
        in_no_grad = compute_cams(densenet, x.clone(), [0])[0]
    outside = compute_cams(densenet, _xray(data_dir, densenet), [0])[0]
    assert inside.max() > 0
    np.testing.assert_allclose(inside, outside, atol=1e-5)
    np.testing.assert_allclose(in_no_grad, outside, atol=1e-5)


def test_densenet_keeps_target_activation_intact(densenet: CXRModel) -> None:
    """The final ReLU must not overwrite norm5's output in place (Grad-CAM reads that very tensor)."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    layer = densenet.cam_target_layer()
    handle = layer.register_forward_hook(lambda m, i, out: seen.append((out, out.clone())))
    try:
        with torch.no_grad():
            densenet(torch.randn(1, 3, 64, 64))
    finally:
        handle.remove()
    (kept, copy), = seen
    assert (copy < 0).any()  # BN output has negatives; an in-place ReLU would have zeroed them in `kept`
    assert torch.equal(kept, copy)


def test_frozen_model_state_is_restored() -> None:
    """A frozen backbone still gives a map; flags, existing `.grad`s and eval mode are as promised."""
    model = create_model("squeezenet1_1", num_classes=2)  # backbone frozen by default
    flags = [p.requires_grad for p in model.parameters()]
    head_weight = model.classifier[1].weight
    head_weight.grad = torch.full_like(head_weight, 7.0)
    model.train()
    (cam,) = compute_cams(model, torch.randn(1, 3, 224, 224), [1])
    assert cam.max() > 0
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(head_weight.grad, torch.full_like(head_weight, 7.0))
    assert not model.training


def test_hooks_released_when_the_model_fails() -> None:
    """IndexError especially: pytorch_grad_cam's own `__exit__` would swallow it and print."""
    model = create_model("simple_cnn", num_classes=2)

    def broken_head(features: torch.Tensor) -> torch.Tensor:
        raise IndexError("boom")

    model.forward_head = broken_head  # type: ignore[method-assign]
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(IndexError, match="boom"):
        compute_cams(model, torch.randn(1, 1, 28, 28), [0])
    assert _hooks(model) == 0
    assert [p.requires_grad for p in model.parameters()] == flags


def test_bad_requests_are_refused() -> None:
    model = create_model("simple_cnn", num_classes=2)
    with pytest.raises(ValueError, match="gradcam, gradcam\\+\\+, xgradcam, eigencam, layercam"):
        compute_cams(model, torch.randn(1, 1, 28, 28), [0], method="scorecam")
    with pytest.raises(ValueError, match="out of range"):
        compute_cams(model, torch.randn(1, 1, 28, 28), [2])
    with pytest.raises(ValueError, match="one image"):
        compute_cams(model, torch.randn(2, 1, 28, 28), [0])


def test_overlay_is_at_the_original_size() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((37, 53)).astype(np.float32)
    cam = np.zeros((28, 28), np.float32)
    cam[:, 14:] = 1.0  # right half hot
    out = overlay(image, cam)
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8
    # Jet is blue at 0 and red at 1: the right half is redder than the left.
    red_minus_blue = out[..., 0].astype(int) - out[..., 2].astype(int)
    assert red_minus_blue[:, -10:].mean() > red_minus_blue[:, :10].mean() + 50
    grey = overlay(image, cam, alpha=0.0)
    np.testing.assert_array_equal(grey[..., 0], np.round(image * 255).astype(np.uint8))


def test_heatmap_grid_and_png() -> None:
    cam = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    grid = heatmap_grid(cam, size=16)
    assert len(grid) == 16 and all(len(row) == 16 for row in grid)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for row in grid for v in row)
    assert grid[0][0] < grid[-1][-1]
    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    png = encode_png(rgb)
    assert png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), rgb)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 2), (1, 4), (4, 1), (3, 5)])
def test_overlay_of_a_tiny_image_keeps_its_size(shape: tuple[int, int]) -> None:
    image = np.full(shape, 0.5, np.float32)
    out = overlay(image, np.ones((28, 28), np.float32), alpha=0.0)
    assert out.shape == (*shape, 3)
    assert (out == 128).all()
