"""Headers of compressed images and their containers, read without decoding, every count bounded.

A decoder trusts what a stream says about itself: a JPEG or JPEG 2000 frame inside a DICOM file may claim
60000 x 60000 pixels while the DICOM header says 64 x 64, a JPEG may hold millions of empty segments or
thousands of progressive scans, a PNG millions of empty chunks, a TIFF an endless chain of pages. These
functions read the few fields that decide the cost, stop walking at a fixed count, and raise
`ImageTooLargeError` past a bound (or `ImageError` when the structure is broken), so the decoders only
ever see streams whose cost the pixel limit bounds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ml.errors import ImageError, ImageTooLargeError

MAX_JPEG_SEGMENTS = 1_000  # marker segments before the first scan (a camera JPEG: about 10-20)
MAX_JPEG_SCANS = 64  # scans of a progressive JPEG (encoders write about 10)
MAX_PNG_CHUNKS = 20_000  # a 32 MiB PNG in 8 KiB data chunks has 4,096
MAX_PNG_TEXT_CHUNKS = 32  # compressed text and ICC chunks (each inflates to at most 1 MiB in Pillow)
MAX_TIFF_PAGES = 1_024
MAX_J2K_TILES = 4_096
MAX_BMP_RLE_BYTES = 2 * 2**20  # Pillow decodes BMP run-length data in Python: ~0.15 s per MiB

# Start-of-frame markers: baseline, extended, progressive, lossless (Huffman and arithmetic), JPEG-LS
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7))
_PROGRESSIVE = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
_STANDALONE = frozenset((0x01, 0xD8, *range(0xD0, 0xD8)))


@dataclass(frozen=True)
class Frame:
    """What a codestream's header says about the image it holds."""

    width: int
    height: int
    components: int
    precision: int  # bits per sample


def _corrupt(name: str, kind: str, what: str) -> ImageError:
    return ImageError(f"{name}: {kind} data is truncated or corrupt ({what})")


# -- JPEG and JPEG-LS --------------------------------------------------------------------------------


def jpeg_frame(data: bytes, name: str) -> Frame:
    """The frame header of a JPEG (or JPEG-LS) stream, after checking its segments and scans are few."""
    if not data.startswith(b"\xff\xd8"):
        raise _corrupt(name, "JPEG", "no start-of-image marker")
    pos, segments, frame, progressive = 2, 0, None, False
    while True:
        if pos + 4 > len(data):
            raise _corrupt(name, "JPEG", "it ends before its first scan")
        if data[pos] != 0xFF:  # stray bytes between segments: decoders skip to the next marker
            pos = data.find(b"\xff", pos)
            if pos < 0:
                raise _corrupt(name, "JPEG", "it ends before its first scan")
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            raise _corrupt(name, "JPEG", "it ends before its first scan")
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageTooLargeError(f"{name}: JPEG has more than {MAX_JPEG_SEGMENTS:,} marker segments")
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker in _SOF and frame is None:
            if length < 8 or pos + 10 > len(data):
                raise _corrupt(name, "JPEG", "short frame header")
            precision, height, width, components = struct.unpack_from(">BHHB", data, pos + 4)
            frame, progressive = Frame(width, height, components, precision), marker in _PROGRESSIVE
        if marker == 0xDA:  # the first scan: the header is complete
            break
        pos += 2 + length
    if frame is None:
        raise _corrupt(name, "JPEG", "no frame header before its first scan")
    if frame.width == 0 or frame.height == 0:
        raise _corrupt(name, "JPEG", f"frame of {frame.width}x{frame.height} pixels")
    if progressive:  # each scan of a progressive JPEG walks every block again
        scans = data.count(b"\xff\xda", pos)
        if scans > MAX_JPEG_SCANS:
            raise ImageTooLargeError(f"{name}: progressive JPEG has {scans:,} scans, over the limit of "
                                     f"{MAX_JPEG_SCANS}")
    return frame


# -- JPEG 2000 -----------------------------------------------------------------------------------------


def j2k_frame(data: bytes, name: str) -> Frame:
    """The image and tile size of a JPEG 2000 codestream (bare or in a JP2 file)."""
    at = 0
    if data[4:8] == b"jP  ":  # JP2 file format: find the contiguous codestream box
        at = _jp2_codestream(data, name)
    if data[at : at + 4] != b"\xff\x4f\xff\x51" or at + 42 > len(data):
        raise _corrupt(name, "JPEG 2000", "no SIZ segment after the start of codestream")
    xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz = struct.unpack_from(">IIIIIIIIH", data, at + 8)
    width, height = xsiz - xo, ysiz - yo
    if xsiz <= xo or ysiz <= yo or xt == 0 or yt == 0 or xto > xo or yto > yo or csiz == 0:
        raise _corrupt(name, "JPEG 2000", f"image size {xsiz}x{ysiz}, offset {xo},{yo}, tiles {xt}x{yt}")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > MAX_J2K_TILES:
        raise ImageTooLargeError(f"{name}: JPEG 2000 image has {tiles:,} tiles, over the limit of "
                                 f"{MAX_J2K_TILES:,}")
    if at + 42 + 3 * csiz > len(data):
        raise _corrupt(name, "JPEG 2000", "short SIZ segment")
    precision = max((data[at + 42 + 3 * i] & 0x7F) + 1 for i in range(csiz))
    return Frame(width, height, csiz, precision)


def _jp2_codestream(data: bytes, name: str) -> int:
    pos = 0
    for _ in range(64):  # a JP2 file has a handful of top-level boxes
        if pos + 8 > len(data):
            break
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if kind == b"jp2c":
            return pos + header
        if size < header:
            break
        pos += size
    raise _corrupt(name, "JPEG 2000", "no codestream box in the JP2 file")


# -- Pillow containers ---------------------------------------------------------------------------------


def check_png(data: bytes, name: str) -> None:
    """Refuse a PNG with more chunks, or more compressed text chunks, than any image needs."""
    pos, chunks, texts = 8, 0, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageTooLargeError(f"{name}: PNG has more than {MAX_PNG_CHUNKS:,} chunks")
        if kind in (b"zTXt", b"iTXt", b"iCCP"):
            texts += 1
            if texts > MAX_PNG_TEXT_CHUNKS:
                raise ImageTooLargeError(
                    f"{name}: PNG has more than {MAX_PNG_TEXT_CHUNKS} compressed text or profile chunks"
                )
        if kind == b"IEND":
            return
        pos += 12 + length


def tiff_pages(data: bytes, name: str) -> int:
    """The number of pages (image file directories) of a TIFF, walking the chain with loops refused."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        raise _corrupt(name, "TIFF", "no byte-order mark")
    big = struct.unpack_from(order + "H", data, 2)[0] == 43  # BigTIFF
    offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    count_fmt, entry, next_fmt = (order + "Q", 20, order + "Q") if big else (order + "H", 12, order + "I")
    count_size, next_size = struct.calcsize(count_fmt), struct.calcsize(next_fmt)
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise _corrupt(name, "TIFF", "its pages form a loop")
        if len(seen) >= MAX_TIFF_PAGES:
            raise ImageTooLargeError(f"{name}: TIFF has more than {MAX_TIFF_PAGES:,} pages")
        seen.add(offset)
        if offset + count_size > len(data):
            break  # a dangling pointer: Pillow reports the file as it finds it
        entries = struct.unpack_from(count_fmt, data, offset)[0]
        at = offset + count_size + entries * entry
        if at + next_size > len(data):
            break
        offset = struct.unpack_from(next_fmt, data, at)[0]
    return max(1, len(seen))


def check_bmp(data: bytes, name: str) -> None:
    """Refuse run-length-encoded BMP data larger than Pillow's Python decoder handles in good time."""
    if len(data) < 34 or struct.unpack_from("<I", data, 14)[0] < 40:
        return  # an OS/2 header: never compressed
    compression, offset = struct.unpack_from("<I", data, 30)[0], struct.unpack_from("<I", data, 10)[0]
    if compression in (1, 2) and len(data) - offset > MAX_BMP_RLE_BYTES:
        raise ImageTooLargeError(
            f"{name}: run-length-encoded BMP data over {MAX_BMP_RLE_BYTES // 2**20} MiB is not decoded; "
            "send the image as PNG"
        )
