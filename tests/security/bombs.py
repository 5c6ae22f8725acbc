"""Hostile uploads, built here byte by byte: each is small on the wire and claims (or hides) a large cost.

Every builder streams what it compresses, so building a 1 GiB bomb never holds 1 GiB in the test process.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

MiB = 2**20
_DX = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray Image Storage - For Presentation
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UT", b"UC", b"UR", b"SV", b"UV")


# -- DICOM ---------------------------------------------------------------------------------------------


def element(tag: int, vr: bytes, value: bytes | None = None, *, length: int | None = None) -> bytes:
    """One explicit VR little endian element header (and `value`); `length` overrides the declared length."""
    n = len(value or b"") if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    head += struct.pack("<HI", 0, n) if vr in _LONG_VRS else struct.pack("<H", n)
    return head + (value or b"")


def dx_header(rows: int, columns: int, *, bits: int = 16, frames: int = 1, samples: int = 1) -> Dataset:
    """The image attributes of a DX dataset, without pixel data."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = _DX, generate_uid()
    ds.Modality, ds.PatientID = "DX", "BOMB"
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    return ds


def encode_dataset(ds: Dataset) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


def file_meta(syntax: UID) -> bytes:
    """Preamble, 'DICM' and the file meta group for `syntax`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = _DX, generate_uid()
    meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue()


class _Deflater:
    """A raw deflate stream built from parts; long runs of zeros cost one compressed block, repeated.

    After a full flush the compressor starts afresh (no history, byte-aligned), so the block that 4 MiB of
    zeros compress to is the same every time: a 1 GiB bomb is built in milliseconds."""

    _BLOCK = 4 * MiB

    def __init__(self) -> None:
        self._comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._out: list[bytes] = []
        self._zero_block: bytes | None = None

    def _flush(self) -> None:
        self._out.append(self._comp.flush(zlib.Z_FULL_FLUSH))

    def data(self, payload: bytes) -> None:
        self._out.append(self._comp.compress(payload))

    def zeros(self, count: int) -> None:
        self._flush()
        whole, rest = divmod(count, self._BLOCK)
        if whole:
            if self._zero_block is None:
                self._zero_block = self._comp.compress(b"\x00" * self._BLOCK) + self._comp.flush(zlib.Z_FULL_FLUSH)
                whole -= 1
                self._out.append(self._zero_block)
            self._out.extend([self._zero_block] * whole)
        self.data(b"\x00" * rest)

    def finish(self) -> bytes:
        return b"".join(self._out) + self._comp.flush()


def deflated_dicom(rows: int, columns: int, *, pixel_bytes: int | None = None, before: int = 0,
                   after: int = 0, bits: int = 16, frames: int = 1) -> bytes:
    """A deflated DICOM of zeros: `before` bytes of a private OB element, then pixel data of `pixel_bytes`
    (default: what Rows x Columns x frames need), then `after` bytes of trailing padding."""
    needed = rows * columns * frames * (bits // 8)
    pixel_bytes = needed if pixel_bytes is None else pixel_bytes
    out = _Deflater()
    out.data(encode_dataset(dx_header(rows, columns, bits=bits, frames=frames)))
    if before:  # (out of tag order: no reader here minds, and the point is where the bytes are)
        out.data(element(0x00290010, b"LO", b"BOMB") + element(0x00291000, b"OB", length=before))
        out.zeros(before)
    out.data(element(0x7FE00010, b"OW", length=pixel_bytes))
    out.zeros(pixel_bytes)
    if after:
        out.data(element(0xFFFCFFFC, b"OB", length=after))
        out.zeros(after)
    return file_meta(DeflatedExplicitVRLittleEndian) + out.finish()


def many_elements_dicom(count: int) -> bytes:
    """A 64x64 DICOM with `count` distinct empty private elements (8 bytes each) before its pixel data."""
    index = np.arange(count, dtype=np.int64)
    tiny = np.zeros(count, dtype=[("group", "<u2"), ("elem", "<u2"), ("vr", "S2"), ("length", "<u2")])
    tiny["group"] = 0x0031 + 2 * (index // 0xF000)  # odd (private) groups, ascending
    tiny["elem"] = 0x1000 + index % 0xF000
    tiny["vr"] = b"LO"
    body = encode_dataset(dx_header(64, 64)) + tiny.tobytes()
    return file_meta(ExplicitVRLittleEndian) + body + element(0x7FE00010, b"OW", b"\x00" * 64 * 64 * 2)


# -- PNG -----------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def zero_png(width: int, height: int, *, mode: str = "RGB", extra: bytes = b"") -> bytes:
    """A valid PNG of zeros (`mode` L, I;16, RGB, RGBA or 1), compressed row by row; `extra` chunks go
    before the image data."""
    depth, colour, channels = {"1": (1, 0, 1), "L": (8, 0, 1), "I;16": (16, 0, 1), "RGB": (8, 2, 3),
                               "RGBA": (8, 6, 4)}[mode]
    row = b"\x00" * (1 + (width * depth * channels + 7) // 8)
    rows_per_block = max(1, 4 * MiB // len(row))
    comp = zlib.compressobj(9)
    idat = []
    for start in range(0, height, rows_per_block):
        idat.append(comp.compress(row * min(rows_per_block, height - start)))
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", b"".join(idat))
            + png_chunk(b"IEND", b""))


def png_many_chunks(count: int) -> bytes:
    """An 8x8 PNG with `count` empty private ancillary chunks before its data (12 bytes each)."""
    return zero_png(8, 8, mode="L", extra=png_chunk(b"prVt", b"") * count)


def png_text_bomb(chunks: int, inflated: int = MiB) -> bytes:
    """An 8x8 PNG with `chunks` zTXt chunks, each inflating to `inflated` bytes of text."""
    text = zlib.compress(b"a" * inflated, 9)
    ztxt = png_chunk(b"zTXt", b"comment\x00\x00" + text)
    return zero_png(8, 8, mode="L", extra=ztxt * chunks)


# -- JPEG ----------------------------------------------------------------------------------------------


def jpeg(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def jpeg_many_markers(count: int) -> bytes:
    """A small JPEG with `count` empty COM segments (4 bytes each) after its SOI."""
    data = jpeg(Image.new("L", (8, 8)))
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """`data` (a JPEG) with its frame header rewritten to claim `width` x `height`."""
    at = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def jpeg_many_scans(width: int, height: int, scans: int) -> bytes:
    """A progressive gray JPEG of `width` x `height` zeros followed by `scans` extra refinement scans."""
    data = jpeg(Image.new("L", (width, height)), progressive=True)
    # a successive-approximation AC refinement scan of the one component: Ss=1, Se=63, Ah=1, Al=0,
    # whose data says "end of band" for every block (an EOBRUN of 2^14 - 1, repeated)
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x10"
    body = data[:-2]
    return body + (sos + b"\x00") * scans + b"\xff\xd9"


# -- TIFF ----------------------------------------------------------------------------------------------


def _ifd(entries: list[tuple[int, int, int, bytes]], next_offset: int) -> bytes:
    """A little-endian IFD: (tag, type, count, 4-byte value or offset) entries, then the next IFD offset."""
    out = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return out + struct.pack("<I", next_offset)


def tiff_many_ifds(count: int, *, loop: bool = False) -> bytes:
    """An 8x8 gray TIFF with `count` pages sharing one strip; `loop`: the last page points back to the
    first (a cycle)."""
    pixels_at = 8
    first_ifd = pixels_at + 64
    def page(next_offset: int) -> bytes:
        return _ifd([(256, 3, 1, struct.pack("<H", 8)), (257, 3, 1, struct.pack("<H", 8)),
                     (258, 3, 1, struct.pack("<H", 8)), (259, 3, 1, struct.pack("<H", 1)),
                     (262, 3, 1, struct.pack("<H", 1)), (273, 4, 1, struct.pack("<I", pixels_at)),
                     (277, 3, 1, struct.pack("<H", 1)), (278, 3, 1, struct.pack("<H", 8)),
                     (279, 4, 1, struct.pack("<I", 64))], next_offset)
    size = len(page(0))
    pages = []
    for i in range(count):
        nxt = first_ifd + (i + 1) * size if i + 1 < count else (first_ifd if loop else 0)
        pages.append(page(nxt))
    return b"II*\x00" + struct.pack("<I", first_ifd) + b"\x00" * 64 + b"".join(pages)


def tiff_big_tag(values: int) -> bytes:
    """An 8x8 gray TIFF with a private LONG tag of `values` values (4 bytes each)."""
    pixels_at, blob_at = 8, 72
    ifd_at = blob_at + 4 * values
    entries = [(256, 3, 1, struct.pack("<H", 8)), (257, 3, 1, struct.pack("<H", 8)),
               (258, 3, 1, struct.pack("<H", 8)), (259, 3, 1, struct.pack("<H", 1)),
               (262, 3, 1, struct.pack("<H", 1)), (273, 4, 1, struct.pack("<I", pixels_at)),
               (277, 3, 1, struct.pack("<H", 1)), (278, 3, 1, struct.pack("<H", 8)),
               (279, 4, 1, struct.pack("<I", 64)), (65000, 4, values, struct.pack("<I", blob_at))]
    return b"II*\x00" + struct.pack("<I", ifd_at) + b"\x00" * 64 + b"\x00" * (4 * values) + _ifd(entries, 0)


def tiff_deflate_zeros(width: int, height: int, mode: str = "L") -> bytes:
    """A TIFF of zeros, deflate-compressed (one strip per 256 rows), written without the full image."""
    bands = {"L": 1, "RGB": 3}[mode]
    rows = 256
    strips = []
    for start in range(0, height, rows):
        strips.append(zlib.compress(b"\x00" * (width * bands * min(rows, height - start)), 9))
    n = len(strips)
    data_at = 8
    offsets, pos = [], data_at
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    off_at = pos
    counts_at = off_at + 4 * n
    bps_at = counts_at + 4 * n
    ifd_at = bps_at + 6
    entries = [(256, 4, 1, struct.pack("<I", width)), (257, 4, 1, struct.pack("<I", height)),
               (258, 3, bands, struct.pack("<I", bps_at) if bands > 2 else struct.pack("<H", 8)),
               (259, 3, 1, struct.pack("<H", 8)), (262, 3, 1, struct.pack("<H", 2 if bands == 3 else 1)),
               (273, 4, n, struct.pack("<I", off_at) if n > 1 else struct.pack("<I", offsets[0])),
               (277, 3, 1, struct.pack("<H", bands)), (278, 4, 1, struct.pack("<I", rows)),
               (279, 4, n, struct.pack("<I", counts_at) if n > 1 else struct.pack("<I", len(strips[0])))]
    return (b"II*\x00" + struct.pack("<I", ifd_at) + b"".join(strips)
            + struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *map(len, strips))
            + struct.pack("<3H", 8, 8, 8) + _ifd(entries, 0))


# -- BMP -----------------------------------------------------------------------------------------------


def bmp_rle8(width: int, height: int, *, literal: bool = True) -> bytes:
    """An 8-bit RLE BMP; `literal`: every pixel its own 1-pixel run (the costliest stream per byte)."""
    if literal:
        row = b"\x01\x00" * width + b"\x00\x00"
    else:
        row = b"\xff\x00" * (width // 255) + (bytes([width % 255, 0]) if width % 255 else b"") + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


# -- compressed pixel data inside DICOM ------------------------------------------------------------------


def j2k_codestream(pixels: np.ndarray) -> bytes:
    """A lossless JPEG 2000 codestream of `pixels` (uint8 or uint16, 2-D)."""
    from openjpeg.utils import encode_array

    return bytes(encode_array(pixels, bits_stored=pixels.dtype.itemsize * 8, photometric_interpretation=2,
                              use_mct=False, codec_format=0))


def j2k_with_size(codestream: bytes, width: int, height: int) -> bytes:
    """`codestream` with its SIZ segment claiming a `width` x `height` image in one tile."""
    at = codestream.index(b"\xff\x51")
    siz = struct.pack(">IIIIIIII", width, height, 0, 0, width, height, 0, 0)
    return codestream[: at + 6] + siz + codestream[at + 38 :]


def encapsulated_dicom(frames: list[bytes], syntax: UID, rows: int, columns: int, *, bits: int = 8,
                       number_of_frames: int | None = None) -> bytes:
    """A DICOM file whose pixel data are the compressed `frames` (one fragment each, empty offset table)."""
    header = dx_header(rows, columns, bits=bits, frames=number_of_frames or len(frames))
    items = [element(0xFFFEE000, b"", b"")[:4] + struct.pack("<I", 0)]
    for frame in frames:
        frame += b"\x00" * (len(frame) % 2)
        items.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(frame)) + frame)
    items.append(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    pixel = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB" + struct.pack("<HI", 0, 0xFFFFFFFF) + b"".join(items)
    return file_meta(syntax) + encode_dataset(header) + pixel


def rle_frame(body: bytes) -> bytes:
    """One RLE Lossless frame of one segment holding `body`."""
    return struct.pack("<16I", 1, 64, *([0] * 14)) + body


def rle_literal_frame(rows: int, columns: int) -> bytes:
    """An 8-bit RLE frame where every byte is its own literal run (two bytes in for one out)."""
    return rle_frame(b"\x00\x00" * (rows * columns))


def rle_noop_frame(size: int) -> bytes:
    """An RLE frame of `size` bytes of the no-op header 0x80: a loop per byte that writes nothing."""
    return rle_frame(b"\x80" * size)
