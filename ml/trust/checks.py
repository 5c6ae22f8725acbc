"""Cheap checks a radiograph passes: big enough, not uniform, grey, and shaped like a chest film.

Each failed check gives a reason in words a person understands. They run on the decoded grey image
(`ml.imaging.read_image`) and, for colour, on the file itself: decoding turns colour into luminance, so
`colour_fraction` looks at the file again, at a small size (JPEG decodes at 1/8 scale through Pillow's
draft mode; other formats only when their header says colour and they are not huge).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ml.imaging import probe_image
from ml.trust.percentiles import percentiles

MIN_SIDE = 24  # PneumoniaMNIST's 28 px radiographs are real inputs of the default model
MAX_ASPECT = 2.5  # chest films are about square (long/short up to ~1.3); a strip is not one
MIN_SPREAD = 0.01  # grey levels between the 0.5th and 99.5th percentiles, in [0, 1] units
COLOUR_LIMIT = 0.02  # fraction of strongly coloured pixels above which the image is a colour image
_CHROMA = 24  # max - min channel over 0..255 that counts a pixel as coloured
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_COLOUR_DECODE_PIXELS = 4_000_000  # beyond this, a non-JPEG colour file is not decoded a second time


def cheap_reasons(image: np.ndarray, colour: float | None = None, size: tuple[int, int] | None = None) -> list[str]:
    """Reasons `image` (H, W in [0, 1]) is not a usable chest X-ray; `colour`: `colour_fraction` of its file;
    `size`: the file's (height, width) when `image` was decoded reduced."""
    reasons = []
    h, w = size or image.shape
    sample = image[:: max(1, image.shape[0] // 256), :: max(1, image.shape[1] // 256)]
    if min(h, w) < MIN_SIDE:
        reasons.append(f"image too small ({w}x{h} pixels; a radiograph needs at least {MIN_SIDE} on each side)")
    elif max(h, w) / min(h, w) > MAX_ASPECT:
        reasons.append(f"implausible shape for a chest X-ray ({w}x{h}, {max(h, w) / min(h, w):.1f}:1)")
    low, high = percentiles(sample, (0.5, 99.5))
    if high - low < MIN_SPREAD:
        reasons.append("image is (nearly) uniform: no anatomy to read")
    if colour is not None and colour > COLOUR_LIMIT:
        reasons.append(f"colour image ({colour:.0%} of pixels coloured): a radiograph is grey")
    return reasons


def colour_fraction(data: bytes) -> float | None:
    """The fraction of strongly coloured pixels of an image file, from a small decode; 0 for a file whose
    header says grey; None when not measured (DICOM, which `ml.imaging` reads by photometric
    interpretation, or a large non-JPEG colour file, to keep the decode budget)."""
    info = probe_image(data)
    if info.format == "DICOM" or info.mode in _GREY_MODES:
        return None if info.format == "DICOM" else 0.0
    if info.format != "JPEG" and info.pixels > _COLOUR_DECODE_PIXELS:
        return None
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft("RGB", (128, 128))
        rgb = im.convert("RGB")
        rgb.thumbnail((128, 128))
        arr = np.asarray(rgb, dtype=np.int16)
    chroma = arr.max(axis=-1) - arr.min(axis=-1)
    return float((chroma > _CHROMA).mean())
