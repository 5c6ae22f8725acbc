"""Uploads as a hospital sends them, checked before they are decoded in full.

The order of checks is the order of cost: the declared content type, the byte size (the request body as a
whole is bounded while it is read, see `app.api.limits`), an empty file, the format's signature, then
`ml.imaging.read_image`, which checks the pixel count and the structure around the pixels (DICOM elements,
deflate, codestreams, chunks) before it decodes anything, so one upload stays within the budget docs/security.md
states (*Upload decoding budget*). Each refusal is a `ServingError` naming the file. A file name is used in
messages only, never as a path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import Request, UploadFile

from app.serving.errors import InvalidInput, TooLarge, UnsupportedMedia
from ml.decoding import Decoded, read_image_for, read_images_for
from ml.errors import ImageError, ImageTooLargeError, UnsupportedImageError

# Content types a client may declare for an X-ray; browsers send application/octet-stream for .dcm files.
ACCEPTED_TYPES = ("image/", "application/dicom", "application/octet-stream")
ACCEPTED_FORMATS = "PNG, JPEG or DICOM (TIFF and BMP are read too)"
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_UNSAFE = re.compile(r"[^\w .()+,=@-]")


@dataclass(frozen=True)
class Upload:
    name: str  # for messages and responses only
    data: bytes


def display_name(filename: str | None, index: int) -> str:
    """The upload's base name, without folders or odd characters, for messages."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", base)[:120] or f"file {index + 1}"


def check_content_type(content_type: str | None, name: str) -> None:
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if not media.startswith(ACCEPTED_TYPES):
        raise UnsupportedMedia(
            f"'{name}' was sent as {media}: send an X-ray image ({ACCEPTED_FORMATS}) as image/*, "
            "application/dicom or application/octet-stream",
            code="unsupported_content_type",
        )


async def read_upload(file: UploadFile, *, index: int, max_bytes: int) -> Upload:
    """The bytes of one uploaded file, refused if over `max_bytes` or empty."""
    name = display_name(file.filename, index)
    check_content_type(file.content_type, name)
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(
            f"'{name}' is larger than the limit of {max_bytes:,} bytes per file", code="file_too_large"
        )
    if not data:
        raise InvalidInput(f"'{name}' is empty (0 bytes)", code="empty_file")
    return Upload(name=name, data=data)


def sniff_format(data: bytes) -> str | None:
    """The image format its first bytes announce, or None."""
    if data[128:132] == b"DICM":
        return "DICOM"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def decode(upload: Upload, *, max_pixels: int) -> np.ndarray:
    """The upload as a float32 HxW image in [0, 1]; runs on a pool thread (it may take a while)."""
    return decode_for(upload, max_pixels=max_pixels).image


def decode_for(upload: Upload, *, max_pixels: int, short_side: int = 0, long_side: int = 0) -> Decoded:
    """The upload decoded for a use that needs `short_side` and `long_side` pixels (`ml.decoding`: a JPEG or
    gray PNG far larger than that decodes reduced), with its full size; runs on a pool thread."""
    with _refusals(upload):
        return read_image_for(upload.data, max_pixels=max_pixels, short_side=short_side, long_side=long_side)


def decode_twice_for(upload: Upload, *, max_pixels: int, short_side: int, long_side: int
                     ) -> tuple[Decoded, Decoded]:
    """The upload decoded for the model (`short_side`, as `decode_for` gives it) and for an overlay
    (`long_side`), sharing what can be shared (`ml.decoding.read_images_for`); runs on a pool thread."""
    with _refusals(upload):
        return read_images_for(upload.data, max_pixels=max_pixels, short_side=short_side, long_side=long_side)


@contextmanager
def _refusals(upload: Upload) -> Iterator[None]:
    """A file that is not an image, or one the decoders refuse, as the serving error that says why."""
    if sniff_format(upload.data) is None:
        raise UnsupportedMedia(
            f"'{upload.name}' is not an image: expected {ACCEPTED_FORMATS}", code="not_an_image"
        )
    try:
        yield
    except ImageTooLargeError as exc:
        raise TooLarge(_named(exc, upload), code="image_too_large") from None
    except UnsupportedImageError as exc:
        raise UnsupportedMedia(_named(exc, upload), code="unsupported_encoding") from None
    except ImageError as exc:
        raise InvalidInput(_named(exc, upload), code="invalid_image") from None


def _named(exc: Exception, upload: Upload) -> str:
    """The library's message with the upload's name in place of '<bytes>'."""
    return str(exc).replace("<bytes>", f"'{upload.name}'", 1)


async def require_multipart(request: Request) -> None:
    """A route dependency: uploads come as multipart/form-data, anything else is refused with 415 (async: it
    only reads a header, so it need not hop to a thread)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        raise UnsupportedMedia(
            f"the request body is {media or 'missing'}: send the X-ray as multipart/form-data in the "
            "field 'file'",
            code="unsupported_content_type",
        )
