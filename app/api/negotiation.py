"""Which encoding a `/gradcam` overlay is answered in: the query says, else the `Accept` header, else JPEG.

`format=png|jpeg|webp` answers the overlay itself in that encoding and `overlay_format` sets the encoding of
the overlays inside `format=json`; without either, `Accept` picks among image/jpeg, image/png and image/webp
by quality value (types named outright, then `image/*`, then `*/*`; a header naming none of them leaves the
default, JPEG: see `ml.explain.overlays` for why). Ties go to the cheapest to encode: JPEG, PNG, WebP. An
`Accept` that refuses all three (`q=0`) answers 406.
"""

from __future__ import annotations

from app.serving.errors import InvalidInput, NotAcceptable
from ml.explain.overlays import DEFAULT_FORMAT, OVERLAY_FORMATS

# the order ties are broken in: cheapest to encode first
_PREFERENCE = ("jpeg", "png", "webp")
_BY_MEDIA = {media: fmt for fmt, media in OVERLAY_FORMATS.items()}
_BY_MEDIA["image/jpg"] = "jpeg"  # a common misspelling


def _qualities(accept: str) -> dict[str, float] | None:
    """The quality value `accept` gives each overlay encoding, or None when it names none of them (not even
    through `image/*` or `*/*`)."""
    explicit: dict[str, float] = {}
    image_any = any_any = None
    for part in accept.split(",")[:64]:  # a header is bounded elsewhere; a long list adds nothing here
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed quality counts as a refusal, the cautious reading
        if media in _BY_MEDIA:
            fmt = _BY_MEDIA[media]
            explicit[fmt] = max(q, explicit.get(fmt, 0.0))
        elif media == "image/*":
            image_any = q
        elif media == "*/*":
            any_any = q
    if not explicit and image_any is None and any_any is None:
        return None
    fallback = image_any if image_any is not None else any_any if any_any is not None else 0.0
    return {fmt: explicit.get(fmt, fallback) for fmt in _PREFERENCE}


def overlay_encoding(format_: str | None, overlay_format: str | None, accept: str | None) -> str:
    """The encoding of the answer's overlays (a key of `OVERLAY_FORMATS`)."""
    if format_ in OVERLAY_FORMATS:
        if overlay_format is not None and overlay_format != format_:
            raise InvalidInput(
                f"format={format_} answers a {format_.upper()} overlay but overlay_format={overlay_format} "
                "was asked for: give one of them",
                code="conflicting_formats",
            )
        return format_
    if overlay_format is not None:
        return overlay_format
    if format_ == "json" or not accept:
        return DEFAULT_FORMAT
    qualities = _qualities(accept)
    if qualities is None:
        return DEFAULT_FORMAT
    best = max(_PREFERENCE, key=lambda fmt: (qualities[fmt], -_PREFERENCE.index(fmt)))
    if qualities[best] <= 0:
        raise NotAcceptable(
            f"the Accept header ({accept[:200]}) refuses every overlay encoding: accept image/jpeg, image/png "
            "or image/webp, or ask for format=json",
            code="not_acceptable",
        )
    return best
