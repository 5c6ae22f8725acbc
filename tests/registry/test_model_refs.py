"""Model references are parsed, and their versions bounded, before anything reaches the database."""

from __future__ import annotations

import pytest

from registry.records import MAX_INT
from registry.versions import ModelRef, parse_ref


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("pneumonia", ModelRef("pneumonia", alias="production")),
        ("pneumonia@staging", ModelRef("pneumonia", alias="staging")),
        ("pneumonia:3", ModelRef("pneumonia", version=3)),
        ("pneumonia:007", ModelRef("pneumonia", version=7)),
        (f"pneumonia:{MAX_INT}", ModelRef("pneumonia", version=MAX_INT)),
    ],
)
def test_references(text: str, ref: ModelRef) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["pneumonia:99999999999999999999", f"pneumonia:{MAX_INT + 1}", "pneumonia:0",
                                  f"pneumonia:{'9' * 5000}"])
def test_versions_outside_the_registry_integer_range_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a version is a whole number from 1 to 2147483647"):
        parse_ref(text)


@pytest.mark.parametrize("text", ["", "pneumonia:", "pneumonia:-1", "pneumonia:\u0663", "pne\x00umonia", "a b"])
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a model reference"):
        parse_ref(text)
