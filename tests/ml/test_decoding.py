"""Decoding for a known use: a JPEG far larger than the model's input decodes reduced in the DCT domain, a plain
gray PNG to its blocks' means, within a stated tolerance of the full decode; everything else exactly as
`read_image`, with its bounds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.config import DataConfig
from ml.decoding import read_image_for, reduction_for
from ml.errors import ImageError, ImageTooLargeError
from ml.imaging import read_image
from ml.transforms import Preprocess

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
# the stated tolerance of a reduced decode, on the model input in [0, 1] (measured: max 0.021, mean 0.0017)
MAX_DIFF, MEAN_DIFF = 0.03, 0.003


def _jpeg(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, **options)
    return out.getvalue()


def _png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def _uploads() -> dict[str, bytes]:
    with Image.open(SAMPLES / "nih_cxr_1024.png") as im:
        gray = im.convert("L")
    rgb = np.asarray(gray.convert("RGB")).copy()
    rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + 20, 0, 255)  # a colour cast: a YCbCr JPEG's Y channel
    return {
        "person1951_bacteria_4882.jpeg": (SAMPLES / "person1951_bacteria_4882.jpeg").read_bytes(),
        "NORMAL2-IM-1438-0001.jpeg": (SAMPLES / "NORMAL2-IM-1438-0001.jpeg").read_bytes(),
        "gray-1024": _jpeg(gray),
        "colour-1024": _jpeg(Image.fromarray(rgb)),
        "progressive-1024": _jpeg(gray, progressive=True),
        "nih_cxr_1024.png": (SAMPLES / "nih_cxr_1024.png").read_bytes(),  # reduced as it is unfiltered (ml.png)
        "16bit-1024.png": _png(Image.fromarray((np.asarray(gray, dtype=np.uint16) * 257 + 101).astype(np.uint16))),
    }


UPLOADS = _uploads()


def _preprocess(size: int, mode: str) -> Preprocess:
    return Preprocess(DataConfig(input_size=size, in_chans=1, resize_mode=mode, crop_pct=1.0,
                                 normalization="minus_one_one", mean=(0.5,), std=(0.5,)))


@pytest.mark.parametrize("mode", ["shorter", "squash"])
@pytest.mark.parametrize("size", [28, 64, 224])
@pytest.mark.parametrize("name", list(UPLOADS))
def test_a_reduced_upload_gives_the_model_input_of_the_full_decode_within_the_tolerance(
    name: str, size: int, mode: str
) -> None:
    data, preprocess = UPLOADS[name], _preprocess(size, mode)
    full = read_image(data)
    decoded = read_image_for(data, short_side=preprocess.source_side)
    assert (decoded.height, decoded.width) == full.shape  # the upload's size, whatever was decoded
    expected = reduction_for(decoded.width, decoded.height, preprocess.source_side, 0)
    assert decoded.reduction == expected and decoded.image.shape[0] == -(-full.shape[0] // expected)
    diff = (preprocess.resize(full) - preprocess.resize(decoded.image)).abs()
    assert float(diff.max()) <= MAX_DIFF and float(diff.mean()) <= MEAN_DIFF, (float(diff.max()), float(diff.mean()))
    if expected == 1:
        np.testing.assert_array_equal(decoded.image, full)


def test_the_reduction_keeps_a_margin_over_what_is_needed() -> None:
    assert reduction_for(1024, 1024, 28, 0) == 8  # 128 >= 2 x 28
    assert reduction_for(1024, 1024, 64, 0) == 8  # 128 >= 2 x 64
    assert reduction_for(1024, 1024, 224, 0) == 2  # 512 >= 448
    assert reduction_for(1016, 656, 224, 0) == 1  # 328 < 448
    assert reduction_for(1024, 1024, 28, 1024) == 1  # an overlay of 1024 px needs every pixel
    assert reduction_for(6000, 4000, 28, 1024) == 4  # 1500 px on the long side still gives 1024
    assert reduction_for(40, 30, 28, 0) == 1  # smaller than twice the input: full (capped at the image)


def test_everything_but_a_reducible_upload_decodes_exactly_as_read_image() -> None:
    png = (SAMPLES / "nih_cxr_1024.png").read_bytes()
    for data, side in ((png, 512), (png, 0), (UPLOADS["gray-1024"], 512), (UPLOADS["gray-1024"], 0)):
        decoded = read_image_for(data, short_side=side)
        assert decoded.reduction == 1
        np.testing.assert_array_equal(decoded.image, read_image(data))


def test_the_orientation_tag_turns_the_reduced_image_and_its_size() -> None:
    with Image.open(SAMPLES / "person1951_bacteria_4882.jpeg") as im:
        exif = im.getexif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to show
        data = _jpeg(im.convert("L"), exif=exif.tobytes())
    full = read_image(data)
    decoded = read_image_for(data, short_side=28)
    assert full.shape == (1016, 656) and (decoded.height, decoded.width) == full.shape
    assert decoded.reduction == 8 and decoded.image.shape == (127, 82)
    preprocess = _preprocess(28, "squash")
    diff = (preprocess.resize(full) - preprocess.resize(decoded.image)).abs()
    assert float(diff.max()) <= MAX_DIFF


def test_the_bounds_hold_before_anything_is_decoded() -> None:
    data = UPLOADS["gray-1024"]
    with pytest.raises(ImageTooLargeError, match="over the limit of 1,000"):
        read_image_for(data, max_pixels=1000, short_side=28)
    truncated = data[: len(data) // 2]
    with pytest.raises(ImageError, match="truncated or corrupt") as reduced:
        read_image_for(truncated, short_side=28)
    with pytest.raises(ImageError) as full:
        read_image(truncated)
    assert type(reduced.value) is type(full.value)
    with pytest.raises(ImageError):
        read_image_for(b"\xff\xd8\xff" + b"\x00" * 100, short_side=28)


def _with_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """`png` with one more chunk right after IHDR."""
    import struct
    import zlib

    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return png[:33] + chunk + png[33:]


def _png_cases() -> dict[str, tuple[bytes, bool]]:
    """PNG uploads, and whether `ml.png` decodes them (else Pillow, through read_image)."""
    with Image.open(SAMPLES / "nih_cxr_1024.png") as im:
        gray = im.convert("L")
    small = gray.resize((300, 200))
    sixteen = Image.fromarray((np.asarray(small, dtype=np.uint16) * 257 + 7).astype(np.uint16))
    gray_png = _png(small)
    return {
        "sample-8bit": ((SAMPLES / "nih_cxr_1024.png").read_bytes(), True),
        "16bit": (_png(sixteen), True),
        "8bit-with-gamma-and-text": (_with_chunk(_with_chunk(gray_png, b"gAMA", (45455).to_bytes(4, "big")),
                                                 b"tEXt", b"Comment\x00x-ray"), True),
        "8bit-with-trns": (_with_chunk(gray_png, b"tRNS", b"\x00\x00"), False),
        "8bit-with-exif": (_with_chunk(gray_png, b"eXIf", Image.Exif().tobytes()), False),
        "palette": (_png(small.convert("P")), False),
        "gray-alpha": (_png(small.convert("LA")), False),
        "rgb": (_png(small.convert("RGB")), False),
        "rgba": (_png(small.convert("RGBA")), False),
        "1bit": (_png(small.convert("1")), False),
    }


PNG_CASES = _png_cases()


@pytest.mark.parametrize("name", list(PNG_CASES))
def test_a_png_decodes_pixel_for_pixel_as_pillow_gives_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import ml.decoding

    data, by_ml_png = PNG_CASES[name]
    calls = []
    gray_images = ml.decoding.gray_images
    monkeypatch.setattr(ml.decoding, "gray_images", lambda *a: calls.append(a) or gray_images(*a))
    decoded = read_image_for(data)
    assert bool(calls) == by_ml_png
    expected = read_image(data)
    assert decoded.image.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(decoded.image, expected)
    assert (decoded.height, decoded.width) == expected.shape


def test_a_png_is_held_to_the_bounds_before_it_is_decoded() -> None:
    data, _ = PNG_CASES["sample-8bit"]
    with pytest.raises(ImageTooLargeError, match="over the limit of 1,000"):
        read_image_for(data, max_pixels=1000)
    with pytest.raises(ImageError, match="truncated"):
        read_image_for(data[: len(data) // 2])
    # without its checksum and IEND the image data is whole: both decoders give it (read_image decides)
    np.testing.assert_array_equal(read_image_for(data[:-20]).image, read_image(data[:-20]))
