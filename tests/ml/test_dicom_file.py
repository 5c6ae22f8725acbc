"""Tests for `ml.dicom_file`: the bounded walk of a DICOM file and the bounded inflation of a deflated one.

Files are built with pydicom (real encodings) or byte by byte (`tests.security.bombs`) for hostile ones.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from ml import dicom_file
from ml.dicom_file import HEADER_ALLOWANCE, MAX_DEPTH, MAX_ELEMENTS, split_dicom
from ml.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from ml.imaging import read_image
from tests.security import bombs


def dataset(stored: np.ndarray, **attrs: object) -> Dataset:
    """A DX dataset holding `stored` as 12-bit values in 16-bit samples, with patient and private data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "P-1", "DX"
    ds.add_new(0x00290010, "LO", "ACME")
    ds.add_new(0x00291001, "OB", b"\x01" * 1000)  # a private blob: never handed to pydicom
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def encode(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax == ExplicitVRBigEndian:  # pydicom writes the pixel bytes as given
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


STORED = (np.arange(48 * 40).reshape(48, 40) * 7 % 4096).astype(np.uint16)


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
)
def test_every_encoding_gives_the_same_image_as_pydicom_reading_the_whole_file(syntax: str) -> None:
    window = {"WindowCenter": 1500, "WindowWidth": 2000, "RescaleSlope": 2, "RescaleIntercept": -100}
    data = encode(dataset(STORED, **window), syntax)
    reference = read_image(encode(dataset(STORED, **window), ExplicitVRLittleEndian))
    np.testing.assert_array_equal(read_image(data), reference)
    full = pydicom.dcmread(io.BytesIO(data))  # pydicom's own reading of the whole file agrees
    values = pydicom.pixels.apply_voi_lut(pydicom.pixels.apply_modality_lut(full.pixel_array, full), full)
    expected = (values - values.min()) / (values.max() - values.min())
    np.testing.assert_allclose(reference, expected, atol=1e-6)


def test_only_image_attributes_luts_and_pixels_reach_pydicom() -> None:
    parts = split_dicom(encode(dataset(STORED), ExplicitVRLittleEndian), name="x", max_pixels=None)
    kept = pydicom.filereader.read_dataset(io.BytesIO(parts.header), False, True)
    tags = sorted(kept.keys())
    assert {tag.group for tag in tags} == {0x0008, 0x0028} and tags[0] == 0x00080005  # the character set
    assert 0x00100010 not in kept and 0x00291001 not in kept  # no patient name, no private blob
    assert parts.pixel_value == STORED.astype("<u2").tobytes() and parts.attrs.rows == 48


def test_a_voi_lut_sequence_is_kept_and_applied() -> None:
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", list(range(4095, -1, -1)))  # LUT Data: an inverting LUT
    data = encode(dataset(STORED, VOILUTSequence=Sequence([item])), ExplicitVRLittleEndian)
    out = read_image(data)
    np.testing.assert_allclose(out, 1 - STORED / STORED.max(), atol=1e-6)


def test_deflated_bomb_before_the_pixel_data_stops_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    inflated = _count_inflation(monkeypatch)
    with pytest.raises(ImageTooLargeError, match="inflates past 8 MiB before its pixel data"):
        read_image(bombs.deflated_dicom(64, 64, before=2**30))
    assert HEADER_ALLOWANCE < inflated[0] <= HEADER_ALLOWANCE + 2 * 2**20


def test_deflated_image_over_the_limit_is_refused_after_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    inflated = _count_inflation(monkeypatch)
    with pytest.raises(ImageTooLargeError, match="60000x60000 = 3,600,000,000 pixels"):
        read_image(bombs.deflated_dicom(60000, 60000, bits=8), max_pixels=40_000_000)
    assert inflated[0] <= 2**20  # one piece: Rows and Columns come first


def test_deflated_pixel_data_longer_than_the_image_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    inflated = _count_inflation(monkeypatch)
    assert read_image(bombs.deflated_dicom(64, 64, pixel_bytes=2**30)).shape == (64, 64)
    assert read_image(bombs.deflated_dicom(64, 64, after=2**30)).shape == (64, 64)
    assert inflated[0] <= 4 * 2**20


def _count_inflation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    total = [0]
    original = dicom_file._inflate

    def counting(*args: object):
        for piece in original(*args):
            total[0] += len(piece)
            yield piece

    monkeypatch.setattr(dicom_file, "_inflate", counting)
    return total


def test_deflated_stream_cut_short_or_corrupt() -> None:
    data = encode(dataset(STORED), DeflatedExplicitVRLittleEndian)
    with pytest.raises(ImageError, match="truncated"):
        read_image(data[: len(data) - 300])
    meta_end = data.index(b"1.2.840.10008.1.2.1.99") + 22
    with pytest.raises(ImageError, match="corrupt"):
        read_image(data[:meta_end] + b"\xff" * 200)


def test_deflated_encapsulated_pixel_data_is_refused() -> None:
    header = bombs.encode_dataset(bombs.dx_header(8, 8, bits=8))
    pixel = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB" + struct.pack("<HI", 0, 0xFFFFFFFF)
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = comp.compress(header + pixel + items) + comp.flush()
    with pytest.raises(UnsupportedImageError, match="encapsulated"):
        read_image(bombs.file_meta(DeflatedExplicitVRLittleEndian) + body)


def test_too_many_elements_are_refused_while_walking() -> None:
    with pytest.raises(ImageTooLargeError, match=f"more than {MAX_ELEMENTS:,} data elements"):
        read_image(bombs.many_elements_dicom(MAX_ELEMENTS + 10))
    assert read_image(bombs.many_elements_dicom(1000)).shape == (64, 64)


def test_sequences_nested_too_deep_are_refused() -> None:
    ds = dataset(STORED)
    inner = Dataset()
    for _ in range(MAX_DEPTH + 2):
        outer = Dataset()
        outer.add_new(0x00291010, "SQ", Sequence([inner]))
        inner = outer
    ds.add_new(0x00291010, "SQ", inner[0x00291010].value)
    for element in ds.iterall():  # undefined lengths: the walker must go inside to find the end
        if element.VR == "SQ":
            element.is_undefined_length = True
            for item in element.value:
                item.is_undefined_length_sequence_item = True
    with pytest.raises(ImageTooLargeError, match="nested deeper"):
        read_image(encode(ds, ExplicitVRLittleEndian))


def test_undefined_length_private_sequences_are_skipped() -> None:
    ds = dataset(STORED)
    item = Dataset()
    item.add_new(0x00291020, "LO", "inside")
    item.add_new(0x00291021, "SQ", Sequence([Dataset()]))
    ds.add_new(0x00291010, "SQ", Sequence([item, item]))
    for element in ds.iterall():
        if element.VR == "SQ":
            element.is_undefined_length = True
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        np.testing.assert_allclose(read_image(encode(ds, syntax)), STORED / STORED.max(), atol=1e-6)


def test_pixel_data_cut_short_is_reported_as_truncated() -> None:
    data = encode(dataset(STORED), ExplicitVRLittleEndian)
    with pytest.raises(ImageError, match=r"truncated \(pixel data declares 3,840 bytes, 3,740 are present\)"):
        read_image(data[:-100])


def test_multi_frame_colour_counts_frames_and_samples_in_the_limit() -> None:
    with pytest.raises(ImageTooLargeError, match=r"64x64x100 frames = 409,600 pixels"):
        split_dicom(bombs.deflated_dicom(64, 64, frames=100), name="x", max_pixels=100_000)


def test_bits_allocated_outside_1_8_16_32_is_refused_before_inflating() -> None:
    """The inflation cap is Rows x Columns x Bits Allocated: 65,535 bits a pixel would allow gigabytes."""
    header = bombs.dx_header(64, 64)
    header.BitsAllocated = 65535
    out = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = bombs.encode_dataset(header) + bombs.element(0x7FE00010, b"OW", length=2**31)
    deflated = out.compress(body) + out.flush()
    with pytest.raises(UnsupportedImageError, match="Bits Allocated of 65535"):
        read_image(bombs.file_meta(DeflatedExplicitVRLittleEndian) + deflated)
