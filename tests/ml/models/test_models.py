"""Every registered model honours the `CXRModel` contract: shapes, gradients, head, freezing, CAM layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ml.errors import ModelError
from ml.explain.gradcam import compute_cams
from ml.models import create_model, get_model_config, list_models
from ml.models.layers import GeM

REPO_ROOT = Path(__file__).resolve().parents[3]

def _hooks(model: nn.Module) -> int:
    """Forward and backward hooks still registered anywhere in `model`."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, kind)) for m in model.modules() for kind in kinds)


def _contract_cases() -> list[pytest.param]:
    """Every registered model x (1, 3) input channels x (1, 14) classes.

    Models made for 224 px or more run two of the four combinations, (1, 14) and (3, 1), which still
    cover both channel counts and both class counts: the full grid cost about 70 s on two shared cores.
    """
    cases = []
    for name in list_models():
        heavy = get_model_config(name).input_size >= 224
        for chans in (1, 3):
            for classes in (1, 14):
                if heavy and (chans == 1) != (classes == 14):
                    continue
                cases.append(pytest.param(name, chans, classes, id=f"{name}-c{chans}-n{classes}"))
    return cases


@pytest.mark.parametrize(("name", "in_chans", "num_classes"), _contract_cases())
def test_model_contract(name: str, in_chans: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_chans=in_chans, num_classes=num_classes)
    size = model.cfg.input_size
    assert (model.cfg.in_chans, model.cfg.num_classes) == (in_chans, num_classes)
    x = torch.randn(2, in_chans, size, size)

    # Forward and backward in training mode: finite logits, finite non-zero gradients where trainable.
    model.train()
    logits = model(x)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    if num_classes > 1:  # raw logits: a final ReLU would keep all 28 of them >= 0
        assert (logits < 0).any()
    logits.square().mean().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    for pname, p in trainable.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in trainable.values())

    # Grad-CAM on the configured layer, hooks gone afterwards.
    assert isinstance(model.cam_target_layer(), nn.Module)
    (cam,) = compute_cams(model, x[:1], [num_classes - 1])
    assert cam.shape == (size, size) and cam.dtype == "float32"
    assert 0.0 <= cam.min() <= cam.max() <= 1.0
    assert _hooks(model) == 0

    # Head, freezing, classifier reset.
    head_ids = {id(p) for p in model.head_parameters()}
    all_ids = {id(p) for p in model.parameters()}
    assert head_ids and head_ids < all_ids
    model.freeze_backbone()
    assert {id(p) for p in model.parameters() if p.requires_grad} == head_ids
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())
    model.reset_classifier(5)
    assert model.cfg.num_classes == 5
    assert {id(p) for p in model.head_parameters()} <= {id(p) for p in model.parameters()}
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 5)


@pytest.mark.parametrize("name", ["vgg_small", "simple_cnn", "vit_tiny"])
@pytest.mark.parametrize("size", [32, 64])
def test_small_models_take_other_input_sizes(name: str, size: int) -> None:
    model = create_model(name, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 3)


def test_simple_cnn_takes_more_layers_and_its_cam_layer_follows() -> None:
    default, deeper = create_model("simple_cnn"), create_model("simple_cnn", num_classes=3, widths=[8, 16, 32, 32])
    assert default.cfg.cam_layer == "features.4" and deeper.cfg.cam_layer == "features.6"
    assert deeper.cam_target_layer() is deeper.features[-1]
    with torch.no_grad():
        assert deeper.eval()(torch.randn(2, 1, 64, 64)).shape == (2, 3)


def test_vit_cam_layer_follows_depth() -> None:
    model = create_model("vit_tiny", depth=2, embed_dim=96, num_heads=3)
    assert model.cfg.cam_layer == "blocks.1.norm1"
    assert model.cam_target_layer() is model.blocks[-1].norm1


def test_squeezenet_backbone_frozen_by_default() -> None:
    frozen = create_model("squeezenet1_1", num_classes=2)
    trainable = {id(p) for p in frozen.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in frozen.head_parameters()}
    free = create_model("squeezenet1_1", num_classes=2, freeze_backbone=False)
    assert all(p.requires_grad for p in free.parameters())


def test_densenet_gem_pools_with_learnable_p() -> None:
    model = create_model("densenet121_gem", num_classes=2)
    gem = [m for m in model.head().modules() if isinstance(m, GeM)]
    assert len(gem) == 1 and gem[0].p.item() == pytest.approx(3.0) and gem[0].p.requires_grad
    x = torch.rand(2, 4, 5, 5) + 0.1
    gem[0].p.data.fill_(1.0)
    assert torch.allclose(gem[0](x), x.mean(dim=(2, 3), keepdim=True), atol=1e-5)


def test_create_model_rejects_bad_arguments() -> None:
    with pytest.raises(ModelError, match="in_chans must be 1 or 3"):
        create_model("simple_cnn", in_chans=2)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        create_model("nope")


@pytest.mark.parametrize("in_chans", [1, 3])
def test_resnet18_narrow_shapes_channels_and_cam_layer(in_chans: int) -> None:
    model = create_model("resnet18_narrow", num_classes=3, in_chans=in_chans)
    assert (model.cfg.input_size, model.cfg.in_chans, model.cfg.cam_layer) == (128, in_chans, "layer4")
    assert model.conv1.in_channels == in_chans and model.cam_target_layer() is model.layer4
    assert [stage[0].conv1.out_channels for stage in (model.layer1, model.layer2, model.layer3, model.layer4)] \
        == [16, 32, 64, 128]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000  # a few MB of fp32 weights
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, 128, 128)).shape == (2, 3)
        assert model.forward_features(torch.randn(1, in_chans, 128, 128)).shape == (1, 128, 4, 4)


def test_resnet18_loads_torchvision_weights_key_for_key() -> None:
    """torchvision's resnet18 state dict (the layout of its ImageNet file) fits, its `fc` head dropped."""
    import torchvision

    from ml.models.pretrained import load_pretrained_backbone

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    model = create_model("resnet18", num_classes=3, in_chans=1)
    assert model.cfg.cam_layer == "layer4" and model.cfg.pretrained_file == "resnet18-f37072fd.pth"
    load_pretrained_backbone(model, reference, first_conv="conv1", drop_prefixes=("fc.",))
    assert torch.equal(model.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])
    assert torch.equal(model.conv1.weight, reference["conv1.weight"].sum(dim=1, keepdim=True))


def test_torchvision_is_imported_only_when_a_model_of_it_is_built() -> None:
    """Importing torchvision costs about 2.5 s (it loads torch._dynamo): the API, the worker and the model
    registry import without it, and building a ResNet, DenseNet or SqueezeNet brings it in."""
    code = ("import sys; import app.main, worker.celery_app, ml.models, ml.training, ml.evaluation, ml.explain; "
            "print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules); "
            "from ml.models import create_model; create_model('resnet18_narrow', num_classes=1); "
            "print('torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "False", "True"]


_LOCKED = """
import threading
import torchvision, pytorch_grad_cam.utils.image  # already imported: only the lock can hold a builder back
from ml.lazy_imports import IMPORT_LOCK
from ml.models import create_model
from ml.explain.split import split_cams

done = {}
def build(name):
    create_model(name, num_classes=2)
    done[name] = True

with IMPORT_LOCK:  # a first import under way on this thread
    threads = [threading.Thread(target=build, args=(n,)) for n in ("resnet18_narrow", "squeezenet1_1", "densenet121")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3)
    print(sorted(done))
for t in threads:
    t.join()
print(sorted(done))
"""


def test_lazy_torchvision_imports_wait_for_one_under_way() -> None:
    """Two threads importing torchvision (or pytorch-grad-cam, which imports it) at once can find it half
    initialised (a 500 in `make run`); every deferred import goes through one lock. With torchvision already
    imported, only that lock can keep a builder waiting: none finishes while this thread holds it, all after."""
    done = subprocess.run([sys.executable, "-c", _LOCKED], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["[]", "['densenet121', 'resnet18_narrow', 'squeezenet1_1']"]
