"""Tests for the bounded decode in `ml.imaging`: conversion in strips gives exactly the values of the
whole-image conversion, holds no whole-image float copy beyond the output, and the checks before decoding
refuse what no decoder should be handed."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from ml import imaging
from ml.errors import ImageError, ImageTooLargeError
from ml.imaging import MAX_SIDE, probe_image, read_image
from tests.security import bombs

RNG = np.random.default_rng(0)


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _noise(mode: str, size: tuple[int, int] = (230, 170)) -> Image.Image:
    width, height = size
    if mode == "I;16":
        return Image.fromarray(RNG.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(RNG.integers(-5000, 90000, (height, width), dtype=np.int32))
    if mode == "F":
        return Image.fromarray(RNG.random((height, width), dtype=np.float32) * 3 - 1)
    if mode == "1":
        return Image.fromarray(RNG.random((height, width)) > 0.5)
    bands = len(Image.new(mode, (1, 1)).getbands())
    rgb = RNG.integers(0, 256, (height, width, bands), dtype=np.uint8)
    if mode in ("L", "P"):
        image = Image.fromarray(rgb[..., 0])
        return image.convert("P") if mode == "P" else image
    return Image.frombytes(mode, size, rgb.tobytes())


CASES = {
    "L": encoded(_noise("L")),
    "LA": encoded(_noise("LA")),
    "RGB": encoded(_noise("RGB")),
    "RGBA": encoded(_noise("RGBA")),
    "P": encoded(_noise("P")),
    "P-transparent": encoded(_noise("P"), transparency=7),
    "1": encoded(_noise("1")),
    "I;16": encoded(_noise("I;16")),
    "I": encoded(_noise("I"), "TIFF"),
    "F": encoded(_noise("F"), "TIFF"),
    "CMYK": encoded(_noise("CMYK"), "JPEG"),
    "YCbCr-jpeg": encoded(_noise("RGB"), "JPEG", quality=90),
    "BMP": encoded(_noise("RGB"), "BMP"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_strips_give_the_whole_image_values(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly, colour included: luminance is a per-pixel sum of channels, not a product blocked by length."""
    whole = read_image(CASES[case])
    for piece in (1_500, 100):  # several rows a strip; one row a strip
        monkeypatch.setattr(imaging, "STRIP_PIXELS", 5_000)
        monkeypatch.setattr(imaging, "PIECE_PIXELS", piece)
        np.testing.assert_array_equal(read_image(CASES[case]), whole)
    assert whole.dtype == np.float32 and 0 <= whole.min() and whole.max() <= 1


def _dicom(stored: np.ndarray, **attrs: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(bombs.file_meta(pydicom.uid.ExplicitVRLittleEndian)
                                    + bombs.encode_dataset(bombs.dx_header(*stored.shape[:2], bits=16))))
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.add_new(0x7FE00010, "OW", stored.astype("<u2").tobytes())
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _ybr_dicom() -> bytes:
    frame = encoded(_noise("RGB", (96, 64)), "JPEG", quality=90)
    ds = pydicom.dcmread(io.BytesIO(bombs.encapsulated_dicom([frame], JPEGBaseline8Bit, 64, 96)))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


STORED = RNG.integers(0, 4096, (90, 70), dtype=np.uint16)
DICOMS = {
    "mono2": _dicom(STORED),
    "rescaled-windowed": _dicom(STORED, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=2000,
                                WindowWidth=3000),
    "monochrome1": _dicom(STORED, PhotometricInterpretation="MONOCHROME1"),
    "zero-window-width": _dicom(STORED, WindowCenter=100, WindowWidth=0),
    "ybr-jpeg": _ybr_dicom(),
}


@pytest.mark.parametrize("case", list(DICOMS))
def test_dicom_strips_give_the_whole_image_values(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = read_image(DICOMS[case])
    monkeypatch.setattr(imaging, "STRIP_PIXELS", 1_000)
    monkeypatch.setattr(imaging, "PIECE_PIXELS", 300)
    if case == "ybr-jpeg":
        np.testing.assert_allclose(read_image(DICOMS[case]), whole, rtol=0, atol=2**-23)
    else:
        np.testing.assert_array_equal(read_image(DICOMS[case]), whole)


def test_ybr_dicom_reads_as_pydicom_turns_it_into_rgb() -> None:
    ds = pydicom.dcmread(io.BytesIO(DICOMS["ybr-jpeg"]))
    rgb = ds.pixel_array.astype(np.float32)  # pydicom's default: YBR to RGB over the whole frame
    expected = np.clip((rgb @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0, 0, 1)
    # within a float32 rounding or two: BLAS's matmul may add the three products in another order, or fused,
    # depending on the kernel it picks (a CI run differed by 2**-23 in a fifth of the pixels)
    np.testing.assert_allclose(read_image(DICOMS["ybr-jpeg"]), expected, rtol=0, atol=2**-22)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_turns_the_pixels_as_pillow_does(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(_noise("L", (31, 17)), "PNG", exif=exif)
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(read_image(data), expected)


def test_conversion_holds_no_whole_image_float_copy() -> None:
    """A 3000 x 3000 RGBA image: the output (36 MB) and one piece's temporaries, not the 432 MB that the
    whole-image float conversion needed (numpy's allocations are traced; Pillow's image is not)."""
    data = bombs.zero_png(3000, 3000, mode="RGBA")
    tracemalloc.start()
    try:
        out = read_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (3000, 3000)
    assert peak < 36e6 + 40e6, peak


def test_nan_in_a_float_image_is_refused() -> None:
    values = np.ones((4, 4), np.float32)
    values[1, 2] = np.nan
    with pytest.raises(ImageError, match="NaN or infinite"):
        read_image(encoded(Image.fromarray(values), "TIFF"))


def test_a_side_over_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match=f"a side longer than {MAX_SIDE:,} pixels"):
        read_image(bombs.zero_png(MAX_SIDE + 1, 1, mode="L"))
    assert read_image(bombs.zero_png(MAX_SIDE, 1, mode="L")).shape == (1, MAX_SIDE)


def test_dicom_colour_counts_its_samples_in_the_limit() -> None:
    with pytest.raises(ImageTooLargeError, match=r"96x64 = 18,432 values \(3 samples per pixel"):
        read_image(DICOMS["ybr-jpeg"], max_pixels=10_000)
    assert read_image(DICOMS["ybr-jpeg"], max_pixels=20_000).shape == (64, 96)


def test_compressed_dicom_frame_must_match_rows_and_columns() -> None:
    frame = bombs.jpeg_with_size(encoded(Image.new("L", (64, 64)), "JPEG"), 65, 64)
    with pytest.raises(ImageError, match="the JPEG frame is 65x64 pixels but the DICOM header says 64x64"):
        read_image(bombs.encapsulated_dicom([frame], JPEGBaseline8Bit, 64, 64))
    rgb = encoded(Image.new("RGB", (64, 64)), "JPEG")
    with pytest.raises(ImageError, match="3 components of 8 bits; the DICOM header says 1 samples"):
        read_image(bombs.encapsulated_dicom([rgb], JPEGBaseline8Bit, 64, 64))


def test_rle_dicom_decodes_in_native_code() -> None:
    stored = RNG.integers(0, 256, (40, 50), dtype=np.uint8)
    runs = b"".join(bytes([len(row) - 1]) + row.tobytes() for row in stored)  # one literal run a row
    data = bombs.encapsulated_dicom([bombs.rle_frame(runs)], RLELossless, 40, 50, bits=8)
    np.testing.assert_allclose(read_image(data), (stored - stored.min()) / (stored.max() - stored.min()),
                               atol=1e-6)


def test_probe_counts_tiff_pages_without_pillow_walking_them() -> None:
    assert probe_image(bombs.tiff_many_ifds(500)).frames == 500
    with pytest.raises(ImageTooLargeError, match="more than 1,024 pages"):
        probe_image(bombs.tiff_many_ifds(5000))
    with pytest.raises(ImageTooLargeError, match="inflates past"):
        probe_image(bombs.deflated_dicom(64, 64, before=2**30))
    assert probe_image(bombs.deflated_dicom(64, 64, pixel_bytes=2**30)).width == 64
