"""Decoding for a known use: an upload whose model input (or overlay) is far smaller than the image decodes at a
fraction of its size where the format allows it, else exactly as `ml.imaging.read_image` does.

A JPEG is decoded by libjpeg-turbo (Pillow's draft mode) scaled by 1/2, 1/4 or 1/8 in the DCT domain (each
8x8 block's inverse transform computed at 4x4, 2x2 or 1x1), straight to gray (a colour JPEG's Y channel):
the largest reduction that still leaves `margin` (2) times the pixels the model's input needs on the short
side, and the overlay's `max_side` on the long side. The model's antialiased resize then starts from
the reduced image, so the model input differs a little from the full decode's (at most 0.03, at most 0.003 on
average, in [0, 1], on the JPEG samples: `tests/ml/test_decoding.py` holds it to that). A JPEG that needs all
its pixels decodes in full, exactly as before.

A plain grayscale PNG (8 or 16 bits, not interlaced, no transparency, no orientation from `eXIf` or text
chunks, up to `STRIP_PIXELS`: what radiographs are) decodes through `ml.png` (ISA-L's inflate and a compiled
unfilter), pixel for pixel what Pillow gives (`tests/ml/test_png.py`: every filter type, both depths, files
written by Pillow and OpenCV, broken and hostile files): 3.2 against 13 ms of thread time for the 1024 px
sample with `read_image`. When the use leaves room (the same `reduction_for` as a JPEG's), the PNG reduces as
it is unfiltered: each block of 2, 4 or 8 pixels a side becomes its mean level, exactly (the sums are
integers; `tests/ml/test_png.py` checks them against Pillow's pixels), so the full-size float image, the
model's resize from it and the input check's are not computed; the model input then differs from the full
decode's within the JPEG's tolerance above. Pillow still reads the header and the chunks before the image data, and anything
not exactly as expected falls back to `read_image`, which decodes it or says why. Other PNGs
(palette, alpha, colour, `tRNS`, `eXIf`), TIFF, BMP and DICOM go through `read_image`. Its bounds hold here too: the JPEG's
segments and scans are checked and its pixel count is held to `max_pixels` from the frame header before
anything is decoded (a PNG's from its header before anything is inflated, and the inflate to what the rows
need), a reduced decode allocates at most what the full one would, and a truncated or corrupt
file is refused by the same decoder with the same message.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ml.errors import CXRError, ImageError
from ml.imaging import (
    DEFAULT_MAX_PIXELS,
    STRIP_PIXELS,
    _check_container,
    _check_pixels,
    _Input,
    _load_pil,
    _open_pil,
    _orient,
    read_image,
)
from ml.png import gray_images

REDUCTIONS = (8, 4, 2)
MARGIN = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that do not change the pixels Pillow gives (no transparency, palette or orientation)
_PLAIN_PNG_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"tIME", b"gAMA",
                               b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD"})
# What Pillow reads from those chunks that `read_image` acts on: transparency, interlacing (not decoded here),
# and an orientation from EXIF or XMP carried in a text chunk
_PNG_INFO_THAT_CHANGES_PIXELS = frozenset({"transparency", "interlace", "exif", "Raw profile type exif", "xmp",
                                           "XML:com.adobe.xmp"})


@dataclass(frozen=True)
class Decoded:
    """A decoded image, float32 HxW in [0, 1], maybe reduced; `width` and `height` are the full image's (as
    shown: after its orientation tag)."""

    image: np.ndarray
    width: int
    height: int
    reduction: int = 1


def read_image_for(
    data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, short_side: int = 0, long_side: int = 0,
    margin: int = MARGIN,
) -> Decoded:
    """Decode `data` for a use that needs at least `short_side` pixels on the image's shorter side and
    `long_side` on its longer one (each capped at the image's own): reduced where the format allows and the
    need leaves room (see the module docstring), else in full by `read_image`."""
    if data[:3] == b"\xff\xd8\xff" and (short_side or long_side):
        reduced = _reduced_jpeg(data, max_pixels, short_side, long_side, margin)
        if reduced is not None:
            return reduced
    elif data[:8] == PNG_SIGNATURE:
        plain = _plain_gray_png(data, max_pixels, ((short_side, long_side),), margin)
        if plain is not None:
            return plain[0]
    image = read_image(data, max_pixels=max_pixels)
    height, width = image.shape
    return Decoded(image, width, height)


def read_images_for(
    data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, short_side: int, long_side: int,
    margin: int = MARGIN,
) -> tuple[Decoded, Decoded]:
    """`data` decoded for a model (`read_image_for` with `short_side`) and for showing (with `long_side`):
    one decode where one serves both; a plain gray PNG inflated once for both."""
    if data[:8] == PNG_SIGNATURE:
        plain = _plain_gray_png(data, max_pixels, ((short_side, 0), (0, long_side)), margin)
        if plain is not None:
            return plain[0], plain[1]
    model = read_image_for(data, max_pixels=max_pixels, short_side=short_side, margin=margin)
    if model.reduction == 1:
        return model, model
    return model, read_image_for(data, max_pixels=max_pixels, long_side=long_side, margin=margin)


def reduction_for(width: int, height: int, short_side: int, long_side: int, margin: int = MARGIN) -> int:
    """The largest DCT reduction (8, 4, 2; else 1) leaving `margin` times the short side asked for (the model's
    antialiased resize still averages over several pixels) and the long side asked for (an overlay is only
    shown), each capped at the image's own."""
    short, long = min(width, height), max(width, height)
    for factor in REDUCTIONS:
        if (math.ceil(short / factor) >= min(short, margin * short_side)
                and math.ceil(long / factor) >= min(long, long_side)):
            return factor
    return 1


def _reduced_jpeg(data: bytes, max_pixels: int | None, short_side: int, long_side: int,
                  margin: int) -> Decoded | None:
    """The JPEG decoded reduced, or None when it needs all its pixels."""
    inp = _Input(name="<bytes>", path=None, data=data)
    try:
        _check_container(inp)  # segments and scans bounded
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
            width, height = im.size
            _check_pixels(inp, width, height, 1, max_pixels)
            factor = reduction_for(width, height, short_side, long_side, margin)
            if factor == 1:
                return None
            im.draft("L", (width // factor, height // factor))
            if im.size != (math.ceil(width / factor), math.ceil(height / factor)):
                return None  # not the reduction asked for (a JPEG Pillow cannot draft): decode in full
            orientation = _load_pil(im, inp)
            levels = np.asarray(im.convert("L") if im.mode != "L" else im)
    except CXRError:
        raise
    except Exception as exc:  # as read_image: a broken file never surfaces as a raw library error
        raise ImageError(f"{inp.name}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    image = _orient(levels.astype(np.float32) / 255.0, orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Decoded(image, width, height, factor)


def _plain_gray_png(data: bytes, max_pixels: int | None, needs: tuple[tuple[int, int], ...],
                    margin: int) -> list[Decoded] | None:
    """A grayscale 8- or 16-bit PNG without transparency or orientation, decoded by `ml.png` once for each
    of `needs` (short side, long side): exactly what `read_image` gives, or where a need leaves room, each
    block of `reduction_for`'s factor reduced to its mean. None for any other PNG (or one over
    `STRIP_PIXELS`, which converts in strips), and for one whose header or image data is not exactly as
    expected: `read_image` then decodes it or says why."""
    inp = _Input(name="<bytes>", path=None, data=data)
    _check_container(inp)  # chunk counts bounded
    try:
        # Pillow reads the header and the chunks before the image data, with its own checks and checksums
        with _open_pil(inp) as im:
            _check_pixels(inp, im.width, im.height, 1, max_pixels)
            tile, info = im.tile, im.info
            width, height = im.size
            depth = 8 if im.mode == "L" else 16
            plain = (im.format == "PNG" and im.mode in ("L", "I;16") and width * height <= STRIP_PIXELS
                     and not _PNG_INFO_THAT_CHANGES_PIXELS & info.keys() and len(tile) == 1
                     and tile[0].codec_name == "zip" and tile[0].args in ("L", "I;16B")
                     and tile[0].extents == (0, 0, width, height))
    except CXRError:
        raise
    except Exception as exc:  # as read_image, whose first steps these are: never a raw library error
        raise ImageError(f"{inp.name}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    if not plain or not _plain_chunks_before(data, tile[0].offset):
        return None
    factors = tuple(reduction_for(width, height, short, long, margin) if short or long else 1
                    for short, long in needs)
    grays = gray_images(data, tile[0].offset, width, height, depth, factors)
    if grays is None:
        return None
    return [Decoded(gray, width, height, factor) for gray, factor in zip(grays, factors, strict=True)]


def _plain_chunks_before(data: bytes, offset: int) -> bool:
    """Whether every chunk before the image data (which starts at `offset`) leaves the pixels as they are."""
    pos = 8
    while pos + 8 < offset:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind not in _PLAIN_PNG_CHUNKS:
            return False
        pos += 12 + length
    return pos + 8 == offset
