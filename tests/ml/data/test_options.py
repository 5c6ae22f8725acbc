"""Adapter options validated against the adapter's own signature."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml.data import list_datasets
from ml.data.options import MAX_OPTION_INT, options_model, path_options, validate_options


def _problems(name: str, options: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        validate_options(name, options)
    return {".".join(map(str, e["loc"])): e["type"] for e in info.value.errors()}


def test_every_adapter_has_a_model_of_its_keyword_options() -> None:
    for name in list_datasets():
        assert set(options_model(name).model_fields) > set(), name
    assert set(options_model("nih").model_fields) == {"csv", "split", "split_dir", "fractions", "val_fraction",
                                                      "seed", "views"}


def test_the_options_naming_files_are_the_ones_typed_as_paths() -> None:
    assert path_options("nih") == ("csv", "split_dir")
    assert path_options("medmnist") == path_options("pneumoniamnist") == path_options("chestmnist") == ("file",)
    assert path_options("folder") == ("label_authority",)
    assert path_options("chexpert") == ()


def test_given_options_come_back_typed_and_defaults_stay_the_adapters() -> None:
    assert validate_options("pneumoniamnist", {}) == {}
    assert validate_options("pneumoniamnist", {"size": "64"}) == {"size": 64}
    assert validate_options("nih", {"views": ["PA"], "fractions": {"train": 1}}) == {
        "views": ["PA"], "fractions": {"train": 1.0}}
    assert validate_options("chexpert", {"labels": "competition"}) == {"labels": "competition"}


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("pneumoniamnist", {"size": "x"}, ("size", "int_parsing")),
        ("folder", {"colour": "red"}, ("colour", "extra_forbidden")),
        ("nih", {"seed": MAX_OPTION_INT + 1}, ("seed", "less_than_equal")),
        ("nih", {"seed": 10**30}, ("seed", "less_than_equal")),
        ("nih", {"fractions": {"train": float("inf")}}, ("fractions.train", "finite_number")),
        ("nih", {"views": "PA"}, ("views", "sequence_str")),
        ("chexpert", {"frontal_only": "maybe"}, ("frontal_only", "bool_parsing")),
        ("medmnist", {"file": ""}, ("file", "string_too_short")),
        ("folder", {"patient_pattern": "x" * 5000}, ("patient_pattern", "string_too_long")),
    ],
)
def test_unknown_keys_wrong_types_and_out_of_range_values_are_refused(name, options, problem) -> None:
    field, kind = problem
    problems = _problems(name, options)
    assert problems.get(field) == kind, problems
