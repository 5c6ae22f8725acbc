"""Model options checked before a run: names and types from each entrypoint, bounds, a build on `meta`."""

from __future__ import annotations

import pytest

from ml.errors import ModelError
from ml.models import list_models
from ml.models.options import ModelOptionError, check_model_kwargs, model_options


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_options_with_types(name):
    options = model_options(name)
    assert options and "pretrained_path" not in options and "cfg" not in options


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("simple_cnn", {"widths": [8, 16], "dropout": 0.1}), ("vit_tiny", {"depth": 2, "embed_dim": 32}),
     ("resnet18_narrow", {"widths": [8, 8, 16, 16]}), ("squeezenet1_1", {"freeze_backbone": False})],
)
def test_options_a_model_takes_pass(name, kwargs):
    check_model_kwargs(name, kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "field", "text"),
    [
        ("simple_cnn", {"widths": "oops"}, "widths", "Sequence[int]"),
        ("simple_cnn", {"depth": 3}, "depth", "no option 'depth'"),
        ("simple_cnn", {"widths": [8, 2.5]}, "widths", "integer"),
        ("simple_cnn", {"dropout": "high"}, "dropout", "valid number"),
        ("simple_cnn", {"widths": [10**9, 8]}, "widths", "within +-8192"),
        ("simple_cnn", {"widths": [8] * 12}, "widths", "cannot be built or run"),  # too many halvings for 28 px
        ("vit_tiny", {"embed_dim": 30, "num_heads": 4}, None, "cannot be built or run"),
        ("densenet121", {"pool": "max"}, "pool", "pool must be 'avg' or 'gem'"),
    ],
)
def test_options_a_model_cannot_use_are_refused_naming_the_field(name, kwargs, field, text):
    with pytest.raises(ModelOptionError, match=text.replace("[", r"\[").replace("+", r"\+")) as info:
        check_model_kwargs(name, kwargs)
    assert info.value.field == field


def test_an_unknown_model_is_a_model_error():
    with pytest.raises(ModelError, match="unknown model"):
        check_model_kwargs("resnet999", {})
