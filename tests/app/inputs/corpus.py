"""The input corpus: files as hospitals and hostile clients send them, each with the answer it must get.

Generated, not stored: every file is built here from a real radiograph (the shipped NIH sample, reduced to
256 px) or from bytes written by hand, so each case says exactly what it is. The limits the failures cross are
the test server's (`SERVER_LIMITS` in the conftest): 3 MiB per file, 16,000,000 pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

MAX_UPLOAD_BYTES = 3 * 2**20
MAX_IMAGE_PIXELS = 16_000_000
MPEG2 = UID("1.2.840.10008.1.2.4.100")  # MPEG2 Main Profile / Main Level: no decoder here
P, J, D, OK = "image/png", "image/jpeg", "application/dicom", 200  # short, for the table in `build`


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    data: bytes
    content_type: str
    status: int = 200
    error: str | None = None  # the JSON body's `error` code
    message: str | None = None  # a fragment the message must contain
    size: tuple[int, int] | None = None  # (width, height) a 200 must report


# -- builders ---------------------------------------------------------------------------------------------


def radiograph(samples: Path) -> np.ndarray:
    """A real chest X-ray as 256x256 uint8, the content of most cases."""
    with Image.open(samples / "nih_cxr_1024.png") as im:
        return np.asarray(im.convert("L").reduce(4))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(side: int = 20000, rows: int | None = None) -> bytes:
    """A valid 1-bit `side` x `side` PNG of zeros: ~48 KB that would decode to side**2 pixels. With `rows`,
    only that many rows of data follow the header (a few KB; the header alone makes the claim)."""
    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(rows or side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def dicom(pixels: np.ndarray | None, *, photometric: str = "MONOCHROME2", bits: int = 12,
          syntax: UID = ExplicitVRLittleEndian, preamble: bool = True, **elements: object) -> bytes:
    """A DX image as a DICOM file; `pixels` None gives a header without pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray (presentation)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "ANON"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.tobytes()
        if syntax in (RLELossless, JPEG2000Lossless):
            ds.compress(syntax, pixels)
    if "Rows" not in ds:
        ds.Rows, ds.Columns = 256, 256
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue() if preamble else out.getvalue()[132:]


def dicom_encapsulated(frame: bytes, syntax: UID, rows: int, columns: int, bits: int = 8) -> bytes:
    """A DICOM file whose pixel data is one compressed frame, as written by a modality."""
    ds = dcmread(io.BytesIO(dicom(None, bits=bits, Rows=rows, Columns=columns)))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def twelve_bit(gray8: np.ndarray) -> np.ndarray:
    return gray8.astype(np.uint16) * 16


# -- the corpus -------------------------------------------------------------------------------------------


def build(samples: Path) -> list[Case]:
    g = radiograph(samples)
    gray = Image.fromarray(g)
    png, jpeg = encode(gray, "PNG"), encode(gray, "JPEG", quality=92)
    rgb = Image.merge("RGB", (gray, gray, gray))
    rgba = Image.merge("RGBA", (gray, gray, gray, Image.new("L", gray.size, 255)))
    la = Image.merge("LA", (gray, Image.new("L", gray.size, 200)))
    g16 = Image.fromarray(g.astype(np.uint16) * 257)
    v12 = twelve_bit(g)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    wide = Image.fromarray(np.tile(g[128:136], (1, 8)))  # 2048 x 8
    corrupt_png = bytearray(png)
    corrupt_png[len(png) // 2 : len(png) // 2 + 64] = b"\xff" * 64
    over_bytes = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(MAX_UPLOAD_BYTES + 1 - 8)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"
    mpeg = dicom_encapsulated(b"\x00\x00\x01\xb3" + b"\x00" * 60, MPEG2, 256, 256)
    huge_dicom = dicom(None, Rows=60000, Columns=60000, PixelData=b"\x00" * 64)
    # fmt: off
    return [
        # What hospitals send: every one is read and classified.
        Case("png-gray8", "gray8.png", png, P, OK, size=(256, 256)),
        Case("png-gray16", "gray16.png", encode(g16, "PNG"), P, OK),
        Case("png-rgb", "rgb.png", encode(rgb, "PNG"), P, OK),
        Case("png-rgba", "rgba.png", encode(rgba, "PNG"), P, OK),
        Case("png-palette", "palette.png", encode(gray.convert("P"), "PNG"), P, OK),
        Case("png-gray-alpha", "la.png", encode(la, "PNG"), P, OK),
        Case("png-1bit", "bilevel.png", encode(gray.convert("1"), "PNG"), P, OK),
        Case("png-1x1", "dot.png", encode(Image.new("L", (1, 1), 128), "PNG"), P, OK, size=(1, 1)),
        Case("png-2048x8", "strip.png", encode(wide, "PNG"), P, OK, size=(2048, 8)),
        Case("png-no-content-type", "gray8.png", png, "", OK),
        Case("jpeg-gray", "gray.jpg", jpeg, J, OK),
        Case("jpeg-rgb-progressive", "rgb.jpg", encode(rgb, "JPEG", progressive=True), J, OK),
        Case("jpeg-cmyk", "cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG"), J, OK),
        Case("jpeg-exif-rotated", "rotated.jpg", encode(gray.crop((0, 0, 256, 200)), "JPEG",
                                                        exif=exif.tobytes()), J, OK, size=(200, 256)),
        Case("tiff-gray16", "gray16.tif", encode(g16, "TIFF"), "image/tiff", OK),
        Case("bmp", "gray.bmp", encode(gray, "BMP"), "image/bmp", OK),
        Case("dicom-monochrome2", "mono2.dcm", dicom(v12), D, OK, size=(256, 256)),
        Case("dicom-monochrome1", "mono1.dcm", dicom(4095 - v12, photometric="MONOCHROME1"), D, OK),
        Case("dicom-rescale-signed", "ct-like.dcm", dicom(v12, RescaleSlope=2, RescaleIntercept=-1024),
             "application/octet-stream", OK),
        Case("dicom-window", "window.dcm", dicom(v12, WindowCenter=2048, WindowWidth=3000), D, OK),
        Case("dicom-rle", "rle.dcm", dicom(v12, syntax=RLELossless), D, OK),
        Case("dicom-jpeg2000", "j2k.dcm", dicom(v12, syntax=JPEG2000Lossless), D, OK),
        Case("dicom-jpeg-baseline", "jpeg.dcm", dicom_encapsulated(jpeg, JPEGBaseline8Bit, 256, 256), D, OK,
             size=(256, 256)),
        # What must be refused, and how.
        Case("zero-bytes", "empty.png", b"", P, 422, "empty_file", "is empty (0 bytes)"),
        Case("text-named-png", "notes.png", b"patient notes: nothing to see\n" * 4, P, 415, "not_an_image",
             "'notes.png' is not an image"),
        Case("png-as-text", "scan.png", png, "text/plain", 415, "unsupported_content_type", "text/plain"),
        Case("pdf-as-pdf", "report.pdf", pdf, "application/pdf", 415, "unsupported_content_type",
             "application/pdf"),
        Case("pdf-as-octet-stream", "report.bin", pdf, "application/octet-stream", 415, "not_an_image",
             "expected PNG, JPEG or DICOM"),
        Case("html-named-jpg", "x.jpg", b"<!doctype html><script>alert(1)</script>", J, 415, "not_an_image",
             "'x.jpg' is not an image"),
        Case("gif", "anim.gif", encode(gray, "GIF"), "image/gif", 415, "not_an_image", "is not an image"),
        Case("webp", "photo.webp", encode(gray, "WEBP"), "image/webp", 415, "not_an_image", "not an image"),
        Case("path-in-filename", "../../etc/passwd", b"root:x:0:0", P, 415, "not_an_image",
             "'passwd' is not an image"),
        Case("png-truncated", "half.png", png[: len(png) // 2], P, 422, "invalid_image", "truncated"),
        Case("jpeg-truncated", "half.jpg", jpeg[: len(jpeg) // 2], J, 422, "invalid_image", "truncated"),
        Case("png-corrupt-data", "bad.png", bytes(corrupt_png), P, 422, "invalid_image", "'bad.png'"),
        Case("png-signature-only", "sig.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, P, 422, "invalid_image",
             "'sig.png'"),
        # (Pillow refuses these two itself, at open, in its own words: 400M pixels is past its bomb limit.)
        Case("png-bomb-20000px", "bomb.png", png_bomb(), P, 413, "image_too_large", "400000000 pixels"),
        Case("png-bomb-header-only", "bomb2.png", png_bomb(rows=64), P, 413, "image_too_large",
             "400000000 pixels"),
        Case("png-over-pixel-limit", "huge.png", encode(Image.new("L", (4096, 4096)), "PNG"), P, 413,
             "image_too_large", "over the limit of 16,000,000"),
        Case("jpeg-over-pixel-limit", "huge.jpg", encode(Image.new("L", (4200, 4000)), "JPEG"), J, 413,
             "image_too_large", "4200x4000"),
        Case("dicom-over-pixel-limit", "huge.dcm", huge_dicom, D, 413, "image_too_large", "60000x60000"),
        Case("file-over-byte-limit", "big.png", over_bytes, P, 413, "file_too_large",
             "larger than the limit of 3,145,728 bytes"),
        Case("dicom-codec-missing", "mpeg.dcm", mpeg, D, 415, "unsupported_encoding", "MPEG2"),
        Case("dicom-no-pixel-data", "header.dcm", dicom(None), D, 422, "invalid_image", "no pixel data"),
        Case("dicom-truncated", "cut.dcm", dicom(v12)[:-20000], D, 422, "invalid_image", "'cut.dcm'"),
        Case("dicom-preamble-then-garbage", "junk.dcm", b"\x00" * 128 + b"DICM" + b"\xfe\xff" * 50, D, 422,
             "invalid_image", "'junk.dcm'"),
    ]
    # fmt: on
