"""Tests for `ml.imaging`: every file is generated here, except one real shipped sample."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from ml.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from ml.imaging import probe_image, read_image


def save_pil(im: Image.Image, path: Path, fmt: str | None = None, **params: object) -> Path:
    im.save(path, fmt, **params)
    return path


def make_dicom(
    stored: np.ndarray,
    photometric: str = "MONOCHROME2",
    *,
    bits_stored: int = 12,
    compress: str | None = None,
    **attrs: object,
) -> bytes:
    """A minimal DX DICOM file (with preamble) holding `stored` as unsigned 16-bit samples."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    frames = stored.shape[0] if stored.ndim == 3 else 1
    ds.Rows, ds.Columns = stored.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = stored.astype("<u2").tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    if compress:
        ds.compress(compress)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def zero_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of zeros, written row by row so the full image is never in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    block = b"\x00" * ((width + 7) // 8 + 1) * 1000  # 1000 rows: filter byte + packed bits each
    idat = b"".join(comp.compress(block) for _ in range(height // 1000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# -- Pillow formats ----------------------------------------------------------------------------------


def test_8bit_gray_png_is_scaled_by_255(tmp_path: Path) -> None:
    arr = np.array([[0, 128, 255]], dtype=np.uint8)
    out = read_image(save_pil(Image.fromarray(arr), tmp_path / "g8.png"))
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out, arr / 255.0, atol=1e-6)


@pytest.mark.parametrize(("fmt", "mode"), [("png", "I;16"), ("tif", "I;16B")])
def test_16bit_gray_is_scaled_by_65535_not_255(tmp_path: Path, fmt: str, mode: str) -> None:
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    im = Image.frombytes(mode, (3, 1), arr.astype(">u2" if mode.endswith("B") else "<u2").tobytes())
    path = save_pil(im, tmp_path / f"g16.{fmt}")
    assert probe_image(path).bit_depth == 16
    np.testing.assert_allclose(read_image(path), [[0.0, 32768 / 65535, 1.0]], atol=1e-6)


def test_12bit_values_in_16bit_png_are_scaled_by_the_container(tmp_path: Path) -> None:
    arr = np.array([[0, 4095]], dtype=np.uint16)
    out = read_image(save_pil(Image.fromarray(arr), tmp_path / "g12.png"))
    np.testing.assert_allclose(out, [[0.0, 4095 / 65535]], atol=1e-7)


def test_int32_mode_i_with_16bit_values(tmp_path: Path) -> None:
    arr = np.array([[0, 32768, 65535]], dtype=np.int32)
    path = save_pil(Image.fromarray(arr), tmp_path / "i32.tif")
    assert probe_image(path).mode == "I"
    np.testing.assert_allclose(read_image(path), [[0.0, 32768 / 65535, 1.0]], atol=1e-6)


def test_rgb_png_becomes_luminance(tmp_path: Path) -> None:
    arr = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    out = read_image(save_pil(Image.fromarray(arr), tmp_path / "rgb.png"))
    np.testing.assert_allclose(out, [[0.299, 0.587, 0.114, 1.0]], atol=1e-5)


def test_rgba_is_composited_on_black(tmp_path: Path) -> None:
    arr = np.array([[[255, 255, 255, 0], [255, 255, 255, 255], [200, 200, 200, 128]]], dtype=np.uint8)
    out = read_image(save_pil(Image.fromarray(arr, "RGBA"), tmp_path / "rgba.png"))
    np.testing.assert_allclose(out, [[0.0, 1.0, (200 / 255) * (128 / 255)]], atol=1e-5)


def test_la_is_composited_on_black(tmp_path: Path) -> None:
    arr = np.array([[[255, 0], [255, 255], [100, 255]]], dtype=np.uint8)
    out = read_image(save_pil(Image.fromarray(arr, "LA"), tmp_path / "la.png"))
    np.testing.assert_allclose(out, [[0.0, 1.0, 100 / 255]], atol=1e-5)


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA"])
def test_8bit_colour_gives_the_float64_luminance_times_alpha(mode: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    out = read_image(save_pil(Image.fromarray(arr, mode), tmp_path / "noise.png"))
    pixels = arr.astype(np.float64) / 255
    gray = pixels[..., 0] if mode == "LA" else pixels[..., :3] @ [0.299, 0.587, 0.114]
    want = gray * pixels[..., -1] if mode in ("LA", "RGBA") else gray
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6)


def test_palette_png(tmp_path: Path) -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.putpixel((1, 0), 1)
    out = read_image(save_pil(im, tmp_path / "p.png"))
    np.testing.assert_allclose(out, [[0.0, 0.299]], atol=1e-5)


def test_1bit_png(tmp_path: Path) -> None:
    im = Image.fromarray(np.array([[False, True, True]]))
    path = save_pil(im, tmp_path / "b.png")
    assert probe_image(path).bit_depth == 1
    np.testing.assert_array_equal(read_image(path), [[0.0, 1.0, 1.0]])


def test_jpeg_gray_and_rgb(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    gray = read_image(save_pil(Image.fromarray(ramp), tmp_path / "g.jpg", quality=95))
    rgb = read_image(save_pil(Image.fromarray(np.dstack([ramp] * 3)), tmp_path / "c.jpeg", quality=95))
    for out in (gray, rgb):
        assert out.shape == (48, 64)
        assert np.abs(out - ramp / 255.0).max() < 0.05


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.fromarray(np.zeros((10, 30), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    out = read_image(save_pil(im, tmp_path / "o.jpg", exif=exif))
    assert out.shape == (30, 10)


def test_real_shipped_samples_decode(data_dir: Path) -> None:
    for name in ("nih_cxr_1024.png", "NORMAL2-IM-1438-0001.jpeg"):
        path = data_dir / "samples" / name
        info = probe_image(path)
        out = read_image(path)
        assert out.shape == (info.height, info.width)
        assert out.dtype == np.float32 and 0.0 <= out.min() < out.max() <= 1.0
    assert read_image(data_dir / "samples" / "nih_cxr_1024.png").shape == (1024, 1024)


def test_bytes_input_equals_path_input(tmp_path: Path) -> None:
    path = save_pil(Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)), tmp_path / "x.png")
    np.testing.assert_array_equal(read_image(path.read_bytes()), read_image(str(path)))


# -- DICOM -------------------------------------------------------------------------------------------


def test_dicom_monochrome2_is_min_max_scaled(tmp_path: Path) -> None:
    path = tmp_path / "m2.dcm"
    path.write_bytes(make_dicom(np.array([[100, 600], [1100, 2100]])))
    np.testing.assert_allclose(read_image(path), [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)


def test_dicom_monochrome1_is_inverted_after_the_window() -> None:
    # Window 150 +- 50 on the stored values: 0 and 100 -> black, 150 -> mid grey, 1000 -> white,
    # then MONOCHROME1 inverts. Inverting first would put 150 outside the window (all white).
    stored = np.array([[0, 100], [150, 1000]])
    out = read_image(make_dicom(stored, "MONOCHROME1", WindowCenter=150, WindowWidth=100))
    np.testing.assert_allclose(out, [[1.0, 1.0], [0.5, 0.0]], atol=0.02)


def test_dicom_rescale_is_applied_before_the_window() -> None:
    # Stored 0..300 -> rescaled -100..500; the window [-100, 300] is defined on rescaled values.
    stored = np.array([[0, 100], [200, 300]])
    out = read_image(
        make_dicom(stored, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=400)
    )
    np.testing.assert_allclose(out, [[0.0, 0.5], [1.0, 1.0]], atol=0.01)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_dicom_decodes(syntax: str) -> None:
    stored = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    data = make_dicom(stored, compress=syntax)
    info = probe_image(data)
    assert info.format == "DICOM" and (info.width, info.height) == (64, 64)
    assert str(syntax) in info.transfer_syntax
    np.testing.assert_allclose(read_image(data), stored / stored.max(), atol=1e-6)


def test_dicom_without_codec_names_the_transfer_syntax() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((8, 8)))))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 64])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(UnsupportedImageError, match=r"MPEG2 Main Profile.*1\.2\.840\.10008\.1\.2\.4\.100"):
        read_image(buf.getvalue())


def test_dicom_multiframe_gives_first_frame_and_counts_frames_in_the_limit() -> None:
    frames = np.stack([np.array([[0, 10], [20, 30]]), np.array([[30, 20], [10, 0]])])
    data = make_dicom(frames)
    assert probe_image(data).frames == 2
    np.testing.assert_allclose(read_image(data), [[0.0, 1 / 3], [2 / 3, 1.0]], atol=1e-6)
    with pytest.raises(ImageTooLargeError, match="2x2x2 frames"):
        read_image(data, max_pixels=6)


def test_dicom_rgb_becomes_gray() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((1, 2)))))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = bytes([255, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    np.testing.assert_allclose(read_image(buf.getvalue()), [[0.299, 1.0]], atol=1e-5)


def test_dicom_detected_by_name_without_preamble(tmp_path: Path) -> None:
    data = make_dicom(np.array([[0, 1]]))
    path = tmp_path / "raw.dcm"
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.file_meta  # a bare dataset, as some old modalities write: no preamble, no 'DICM'
    ds.preamble = None
    ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(read_image(path), [[0.0, 1.0]])


def test_truncated_dicom() -> None:
    data = make_dicom(np.ones((64, 64)))
    with pytest.raises(ImageError, match="truncated"):
        read_image(data[: len(data) - 4000])


# -- limits and errors -------------------------------------------------------------------------------


def test_png_bomb_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(zero_png(20000, 20000))
    assert path.stat().st_size < 100_000  # 400 million pixels in under 100 KB
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="400000000"):
        read_image(path)
    assert time.perf_counter() - start < 1.0


def test_our_own_limit_is_checked_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = zero_png(3000, 2000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ImageTooLargeError, match=r"3000x2000 = 6,000,000 pixels.*limit of 1,000,000"):
        read_image(data, max_pixels=1_000_000)


def test_empty_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty file"):
        read_image(b"")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageError, match="not a recognised image"):
        read_image(path)
    with pytest.raises(ImageError, match="notes.png"):
        probe_image(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(tmp_path: Path, fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, fmt)
    with pytest.raises(ImageError, match="truncated"):
        read_image(buf.getvalue()[: buf.tell() // 2])


def test_truncated_images_are_not_allowed_globally() -> None:
    import ml.data  # noqa: F401  (importing the library must not change Pillow's global policy)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
