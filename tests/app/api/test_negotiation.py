"""The encoding of a /gradcam overlay: the query, else `Accept`, else JPEG."""

from __future__ import annotations

import pytest

from app.api.negotiation import overlay_encoding
from app.serving.errors import InvalidInput, NotAcceptable


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "jpeg"),
        ("", "jpeg"),
        ("*/*", "jpeg"),
        ("application/json, text/plain, */*", "jpeg"),  # axios's default: names no image type
        ("text/html", "jpeg"),  # names none of them: the default, not a refusal
        ("image/png", "png"),
        ("image/webp", "webp"),
        ("image/jpg", "jpeg"),
        ("image/png;q=0.5, image/webp;q=0.9", "webp"),
        ("image/png, image/webp", "png"),  # a tie goes to the cheaper to encode
        ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "jpeg"),  # a browser's <img>
        ("image/jpeg;q=0, image/*", "png"),
        ("IMAGE/PNG ; Q=1", "png"),
        ("image/png;q=abc, image/jpeg;q=0.1", "jpeg"),  # a malformed quality refuses that type
    ],
)
def test_accept_picks_the_encoding(accept: str | None, expected: str) -> None:
    assert overlay_encoding(None, None, accept) == expected


def test_the_query_wins_over_accept() -> None:
    assert overlay_encoding("png", None, "image/webp") == "png"
    assert overlay_encoding(None, "webp", "image/png") == "webp"
    assert overlay_encoding("json", "png", "image/webp") == "png"
    assert overlay_encoding("json", None, "image/webp") == "jpeg"  # Accept is about the JSON then
    assert overlay_encoding("webp", "webp", None) == "webp"


def test_conflicts_and_refusals() -> None:
    with pytest.raises(InvalidInput, match="format=png answers a PNG overlay but overlay_format=jpeg"):
        overlay_encoding("png", "jpeg", None)
    with pytest.raises(NotAcceptable, match="refuses every overlay encoding"):
        overlay_encoding(None, None, "image/*;q=0")
    with pytest.raises(NotAcceptable):
        overlay_encoding(None, None, "image/png;q=0, image/jpeg;q=0, image/webp;q=0")
    assert overlay_encoding("json", None, "image/*;q=0") == "jpeg"  # JSON is not an image answer
