"""ImageNet weights load from a local file only, in torchvision's format, with clear errors otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

from ml.errors import ModelError
from ml.models import create_model
from ml.models.densenet import remap_legacy_key
from ml.models.pretrained import load_pretrained_backbone, locate_pretrained, read_state_dict


def _to_legacy(key: str) -> str:
    """`denseblock1...norm1.weight` -> `...norm.1.weight`: the naming of torchvision's original file."""
    return re.sub(r"(denseblock1\.denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)


@pytest.fixture(scope="module")
def densenet_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random torchvision DenseNet-121 saved as the ImageNet file is: legacy keys, no BN counters."""
    torch.manual_seed(1)
    state = torchvision.models.densenet121(weights=None).state_dict()
    saved = {_to_legacy(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert any(".norm.1." in k for k in saved)
    path = tmp_path_factory.mktemp("weights") / "densenet121-a639ec97.pth"
    torch.save(saved, path)
    return path, state


@pytest.fixture(scope="module")
def squeezenet_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(2)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "squeezenet1_1-b8a52dc0.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("in_chans", [3, 1])
@pytest.mark.parametrize(
    ("name", "state_fixture", "first_conv"),
    [("densenet121", "densenet_state", "conv0.weight"), ("squeezenet1_1", "squeezenet_state", "0.weight")],
)
def test_loads_torchvision_weights(
    name: str, state_fixture: str, first_conv: str, in_chans: int, request: pytest.FixtureRequest
) -> None:
    """Every backbone tensor equals the saved one (the first conv summed over RGB for one channel)."""
    path, saved = request.getfixturevalue(state_fixture)
    model = create_model(name, in_chans=in_chans, num_classes=4, pretrained=True, pretrained_path=path)
    for key, value in model.features.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        expected = saved[f"features.{key}"]
        if key == first_conv and in_chans == 1:
            expected = expected.sum(dim=1, keepdim=True)
        assert torch.equal(value, expected), key
    # A new head: every weight has 4 outputs, not ImageNet's 1000.
    assert all(p.shape[0] == 4 for p in model.head_parameters() if p.ndim >= 2)
    with torch.no_grad():
        assert model(torch.randn(1, in_chans, 64, 64)).shape == (1, 4)


def test_weights_found_in_torch_hub_cache(
    densenet_state: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, saved = densenet_state
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / path.name).symlink_to(path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = create_model("densenet121_gem", num_classes=2, pretrained=True)
    assert torch.equal(model.features.norm5.running_var, saved["features.norm5.running_var"])


def test_missing_cache_file_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError) as err:
        create_model("densenet121", pretrained=True)
    message = str(err.value)
    assert str(tmp_path / "checkpoints" / "densenet121-a639ec97.pth") in message
    assert "pretrained_path" in message


def test_missing_explicit_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ModelError, match=re.escape(str(missing))):
        create_model("squeezenet1_1", pretrained=True, pretrained_path=missing)


def test_models_without_imagenet_weights_refuse_pretrained() -> None:
    with pytest.raises(ModelError, match="has no ImageNet weights"):
        create_model("vgg_small", pretrained=True)
    cfg = create_model("vit_tiny").cfg
    with pytest.raises(ModelError, match="vit_tiny"):
        locate_pretrained(cfg, "/some/file.pth")


def test_wrong_file_lists_the_mismatched_keys(squeezenet_state: tuple[Path, dict]) -> None:
    path, _ = squeezenet_state
    with pytest.raises(ModelError, match=r"missing backbone keys .*features\.conv0\.weight"):
        create_model("densenet121", pretrained=True, pretrained_path=path)


def test_shape_mismatch_and_non_state_dicts_are_model_errors(
    densenet_state: tuple[Path, dict], tmp_path: Path
) -> None:
    _, saved = densenet_state
    model = create_model("densenet121", num_classes=2)
    bad = dict(saved) | {"features.norm5.weight": torch.zeros(3)}
    with pytest.raises(ModelError, match="do not fit"):
        load_pretrained_backbone(model, bad, first_conv="features.conv0")
    not_weights = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(ModelError, match="not a state dict"):
        read_state_dict(not_weights)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read pretrained weights"):
        read_state_dict(garbage)


def test_legacy_densenet_keys_are_renamed() -> None:
    assert remap_legacy_key("features.denseblock2.denselayer7.norm.2.running_var") == (
        "features.denseblock2.denselayer7.norm2.running_var"
    )
    assert remap_legacy_key("features.denseblock1.denselayer1.conv.1.weight") == (
        "features.denseblock1.denselayer1.conv1.weight"
    )
    assert remap_legacy_key("features.norm5.weight") == "features.norm5.weight"
