"""The structure of a DICOM file, read within fixed bounds before pydicom parses any of it.

pydicom reads a whole dataset: it inflates a deflated one in a single call (a 1 MB upload can inflate to
gigabytes) and builds an object for every element (millions of empty private elements cost a gigabyte
and seconds). Decoding needs few of them, so `split_dicom` walks the file's elements itself, counting
them against `MAX_ELEMENTS`, and keeps only:

* the file meta group,
* the top-level elements of the image pixel, presentation and LUT modules (group 0028, with any nested
  LUT sequences), the character set, and the pixel data's offset tables (group 7FE0),
* the pixel data value, cut to the length that Rows x Columns x frames x samples x bits need.

Everything else (patient, study, private and trailing elements) is skipped by its length and never
decoded. A deflated dataset (transfer syntax 1.2.840.10008.1.2.1.99) is inflated piece by piece while it
is walked: at most `HEADER_ALLOWANCE` bytes before the pixel data, then exactly the pixel data's length,
and the pixel count is checked as soon as Rows and Columns have been read, so a bomb is refused after a
few kilobytes of inflation. The kept elements are handed to pydicom as a small dataset of the file's
encoding (explicit VR little endian for a deflated one).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ml.errors import ImageError, ImageTooLargeError, UnsupportedImageError

MAX_ELEMENTS = 50_000  # data elements and items walked, at every level (a radiograph's header: a few hundred)
MAX_DEPTH = 16  # nested sequences
HEADER_ALLOWANCE = 8 * 2**20  # inflated bytes a deflated dataset may hold before its pixel data
KEPT_ALLOWANCE = 4 * 2**20  # bytes of kept non-pixel elements (LUTs included) handed to pydicom

DEFLATED = "1.2.840.10008.1.2.1.99"
_IMPLICIT_LE, _EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_PIXEL_DATA, _CHARSET = 0x7FE00010, 0x00080005
_ROWS, _COLUMNS, _FRAMES, _SAMPLES, _BITS = 0x00280010, 0x00280011, 0x00280008, 0x00280002, 0x00280100
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
# VRs with a 4-byte length in explicit VR (PS3.5 7.1.2); pydicom's list
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_VRS = _LONG_VRS | frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_INFLATE_PIECE = 2**20


class _Short(Exception):
    """The buffer ends inside an element: more inflated bytes are needed (or the file is truncated)."""


@dataclass
class ImageAttrs:
    """The image attributes read while walking (the values pydicom will read are checked again later)."""

    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    samples: int = 1
    bits_allocated: int = 16

    def pixel_bytes(self) -> int:
        """Bytes of native pixel data that Rows x Columns x frames x samples x bits need (even length)."""
        bits = (self.rows or 0) * (self.columns or 0) * self.frames * self.samples * self.bits_allocated
        size = (bits + 7) // 8
        return size + size % 2


@dataclass
class DicomParts:
    """What `split_dicom` keeps of a file, for pydicom."""

    meta: bytes  # the file meta group's elements (explicit VR little endian); b"" when absent
    syntax: str | None  # the transfer syntax UID the meta names (None: none)
    implicit: bool  # the dataset's encoding (after inflation)
    little: bool
    header: bytes  # the kept top-level elements, in file order, in the dataset's encoding
    attrs: ImageAttrs
    pixel_vr: str | None = None  # None: no pixel data
    pixel_value: bytes | None = None  # native: the samples; encapsulated: the items, delimiter excluded
    encapsulated: bool = False
    elements: int = 0


def _kept(tag: int) -> bool:
    group = tag >> 16
    return group == 0x0028 or tag == _CHARSET or (group == 0x7FE0 and tag != _PIXEL_DATA)


# -- the element walker --------------------------------------------------------------------------------


@dataclass
class _Walker:
    """Walks elements of `buf` (a dataset in one encoding) without decoding values, counting them."""

    buf: bytes | bytearray
    implicit: bool
    little: bool
    name: str
    count: int = 0
    attrs: ImageAttrs = field(default_factory=ImageAttrs)

    def __post_init__(self) -> None:
        e = "<" if self.little else ">"
        self._tag = struct.Struct(f"{e}HH").unpack_from
        self._u16 = struct.Struct(f"{e}H").unpack_from
        self._u32 = struct.Struct(f"{e}I").unpack_from

    def corrupt(self, what: str) -> ImageError:
        return ImageError(f"{self.name}: DICOM file is truncated or corrupt ({what})")

    def _need(self, end: int, limit: int | None) -> None:
        if end > len(self.buf):
            raise _Short
        if limit is not None and end > limit:
            raise self.corrupt("an element overruns the item that holds it")

    def _counted(self) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise ImageTooLargeError(f"{self.name}: DICOM file has more than {MAX_ELEMENTS:,} data elements")

    def header(self, pos: int, implicit: bool, limit: int | None = None) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, length, value offset) of the element at `pos`."""
        self._need(pos + 8, limit)
        group, elem = self._tag(self.buf, pos)
        tag = group << 16 | elem
        if implicit or group == 0xFFFE:  # items and delimiters have no VR in either encoding
            return tag, None, self._u32(self.buf, pos + 4)[0], pos + 8
        vr = bytes(self.buf[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            self._need(pos + 12, limit)
            return tag, vr, self._u32(self.buf, pos + 8)[0], pos + 12
        if vr not in _VRS and not (b"AA" <= vr <= b"ZZ"):  # pydicom: an implicit element amid explicit ones
            return tag, None, self._u32(self.buf, pos + 4)[0], pos + 8
        return tag, vr, self._u16(self.buf, pos + 6)[0], pos + 8

    def looks_implicit(self, pos: int) -> bool:
        """Whether the element at `pos` is implicit VR (its VR bytes are not two capital letters)."""
        self._need(pos + 6, None)
        return not (0x40 < self.buf[pos + 4] < 0x5B and 0x40 < self.buf[pos + 5] < 0x5B)

    def is_sequence(self, tag: int, vr: bytes | None, length: int, value: int) -> bool:
        if vr is not None:
            return vr == b"SQ" or (vr == b"UN" and length == _UNDEFINED)  # pydicom reads such UN as SQ
        try:
            from pydicom.datadict import dictionary_VR

            if dictionary_VR(tag) == "SQ":
                return True
        except KeyError:
            pass
        if length != _UNDEFINED:
            return False
        self._need(value + 4, None)
        group, elem = self._tag(self.buf, value)
        return (group << 16 | elem) == _ITEM

    def sequence(self, pos: int, end: int | None, implicit: bool, depth: int, descend: bool) -> int:
        """Walk the items of a sequence from `pos` (to `end`, or its delimiter); the offset after it.
        `descend`: walk inside items of defined length too (pydicom will parse them)."""
        if depth > MAX_DEPTH:
            raise ImageTooLargeError(f"{self.name}: DICOM sequences nested deeper than {MAX_DEPTH}")
        while end is None or pos < end:
            tag, _, length, value = self.header(pos, True, end)
            self._counted()
            if tag == _SEQ_END and end is None:
                return value
            if tag != _ITEM:
                raise self.corrupt(f"tag ({tag >> 16:04X},{tag & 0xFFFF:04X}) where a sequence item belongs")
            if length == _UNDEFINED:
                pos = self.dataset(value, None, implicit, depth + 1, descend)
            else:
                self._need(value + length, end)
                if descend:
                    self.dataset(value, value + length, implicit, depth + 1, descend)
                pos = value + length
        return pos

    def fragments(self, pos: int) -> int:
        """Walk encapsulated items (offset table and fragments) to the delimiter; the delimiter's offset."""
        while True:
            tag, _, length, value = self.header(pos, True)
            self._counted()
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM or length == _UNDEFINED:
                raise self.corrupt("encapsulated pixel data without items of defined length")
            self._need(value + length, None)
            pos = value + length

    def dataset(self, pos: int, end: int | None, implicit: bool, depth: int, descend: bool) -> int:
        """Walk a nested dataset (a sequence item) to `end` or its item delimiter; the offset after it."""
        if end is None or pos < end:
            # pydicom: items of an explicit VR sequence may be written in implicit VR
            implicit = implicit or self.looks_implicit(pos)
        while end is None or pos < end:
            pos = self.element(pos, implicit, depth, descend, end)
            if pos < 0:  # an item delimiter: the end of an item of undefined length
                return -pos
        return pos

    def element(self, pos: int, implicit: bool, depth: int, descend: bool, limit: int | None = None) -> int:
        """Walk one element; the offset after it (negated after an item delimiter)."""
        tag, vr, length, value = self.header(pos, implicit, limit)
        self._counted()
        if tag == _ITEM_END:
            return -value
        if length == _UNDEFINED:
            if self.is_sequence(tag, vr, length, value):
                return self.sequence(value, None, implicit, depth + 1, descend)
            return self.fragments(value) + 8
        self._need(value + length, limit)
        if descend and self.is_sequence(tag, vr, length, value):
            self.sequence(value, value + length, implicit, depth + 1, descend)
        return value + length

    def note(self, tag: int, vr: bytes | None, value: bytes) -> None:
        """Record an image attribute from its raw value."""
        try:
            if tag == _FRAMES:
                self.attrs.frames = max(1, int(value.strip(b" \x00").split(b"\\")[0] or b"1"))
                return
            size = 4 if vr in (b"UL", b"SL") else 2
            number = struct.unpack_from(("<" if self.little else ">") + ("I" if size == 4 else "H"), value)[0]
        except (ValueError, struct.error):
            raise self.corrupt(f"unreadable value of ({tag >> 16:04X},{tag & 0xFFFF:04X})") from None
        if tag == _ROWS:
            self.attrs.rows = number
        elif tag == _COLUMNS:
            self.attrs.columns = number
        elif tag == _SAMPLES:
            self.attrs.samples = max(1, number)
        elif tag == _BITS:
            if number not in (1, 8, 16, 32):  # what radiographs use: the inflation cap is derived from it
                raise UnsupportedImageError(
                    f"{self.name}: DICOM Bits Allocated of {number} is not supported (1, 8, 16 or 32)"
                )
            self.attrs.bits_allocated = number


@dataclass
class _TopLevel:
    """The walk of a dataset's top level, resumable as more inflated bytes arrive."""

    walker: _Walker
    max_pixels: int | None
    pos: int = 0
    kept: list[tuple[int, int]] = field(default_factory=list)
    kept_bytes: int = 0
    pixel: tuple[bytes | None, int, int] | None = None  # (VR, length, value offset)

    def advance(self) -> str:
        """Walk complete elements: "pixels" once at the pixel data, "end" at the end of the buffer, "short"
        when it ends inside an element (the walk resumes at that element's start)."""
        w = self.walker
        while self.pos < len(w.buf):
            count = w.count
            try:
                tag, vr, length, value = w.header(self.pos, w.implicit)
                if tag == _PIXEL_DATA:
                    w._counted()
                    self.pixel = (vr, length, value)
                    return "pixels"
                end = w.element(self.pos, w.implicit, 0, _kept(tag))
            except _Short:
                w.count = count
                return "short"
            if end < 0:
                raise w.corrupt("an item delimiter at the top level")
            if _kept(tag):
                self.keep(tag, vr, self.pos, value, end)
            self.pos = end
        return "end"

    def keep(self, tag: int, vr: bytes | None, start: int, value: int, end: int) -> None:
        self.kept.append((start, end))
        self.kept_bytes += end - start
        if self.kept_bytes > KEPT_ALLOWANCE:
            raise ImageTooLargeError(
                f"{self.walker.name}: DICOM image attributes and LUTs exceed {KEPT_ALLOWANCE // 2**20} MiB"
            )
        if tag in (_ROWS, _COLUMNS, _FRAMES, _SAMPLES, _BITS):
            self.walker.note(tag, vr, bytes(self.walker.buf[value:end]))
            self.check_pixels()

    def check_pixels(self) -> None:
        a = self.walker.attrs
        if a.rows is None or a.columns is None or self.max_pixels is None:
            return
        total = a.rows * a.columns * a.frames * a.samples
        if total > self.max_pixels:
            size = f"{a.columns}x{a.rows}" + (f"x{a.frames} frames" if a.frames > 1 else "")
            unit = "pixels" if a.samples == 1 else f"values ({a.samples} samples per pixel, each counted)"
            raise ImageTooLargeError(
                f"{self.walker.name}: image is {size} = {total:,} {unit}, over the limit of {self.max_pixels:,}"
            )


# -- the file ------------------------------------------------------------------------------------------


def split_dicom(data: bytes, *, name: str, max_pixels: int | None, with_pixels: bool = True) -> DicomParts:
    """The parts of the DICOM file `data` that decoding needs, read within the bounds above."""
    start = 132 if data[128:132] == b"DICM" else 0
    meta_end, syntax = _file_meta(data, start, name)
    pos = meta_end
    if syntax == DEFLATED:
        return _inflated(data, pos, name, max_pixels, with_pixels, meta=bytes(data[start:meta_end]))
    if syntax is None:  # no file meta: guess the encoding as pydicom does
        implicit, little = _guess_encoding(data, pos)
    else:
        implicit, little = syntax == _IMPLICIT_LE, syntax != _EXPLICIT_BE
    body = memoryview(data)[pos:]
    walker = _Walker(body, implicit, little, name)
    if len(body) >= 6:
        walker.implicit = walker.looks_implicit(0)  # pydicom trusts the data over the meta here
    top = _TopLevel(walker, max_pixels)
    if top.advance() == "short":
        raise walker.corrupt("the file ends inside an element")
    parts = _parts(top, bytes(data[start:meta_end]), syntax)
    if top.pixel is not None and with_pixels:
        _take_pixels(parts, top, body)
    return parts


def _file_meta(data: bytes, start: int, name: str) -> tuple[int, str | None]:
    """The end of the file meta group (elements of group 0002 from `start`) and its transfer syntax."""
    walker = _Walker(memoryview(data), implicit=False, little=True, name=name)
    pos, syntax = start, None
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        try:
            tag, _, length, value = walker.header(pos, False)
            end = value + length
            walker._need(end, None)
        except _Short:
            raise walker.corrupt("the file meta information is cut short") from None
        if walker.count > 1000 or length == _UNDEFINED:
            raise walker.corrupt("the file meta information is malformed")
        walker.count += 1
        if tag == 0x00020010:
            syntax = bytes(data[value:end]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos = end
    return pos, syntax


def _guess_encoding(data: bytes, pos: int) -> tuple[bool, bool]:
    """(implicit, little) for a dataset without file meta, as pydicom guesses it."""
    if len(data) < pos + 6:
        return True, True
    group = struct.unpack_from("<H", data, pos)[0]
    vr = bytes(data[pos + 4 : pos + 6])
    if vr in _VRS:
        return False, group < 1024  # a big endian group 0x0008 reads as 2048 little endian
    return True, True


def _parts(top: _TopLevel, meta: bytes, syntax: str | None) -> DicomParts:
    w = top.walker
    header = b"".join(bytes(w.buf[a:b]) for a, b in top.kept)
    return DicomParts(meta=meta, syntax=syntax, implicit=w.implicit, little=w.little, header=header,
                      attrs=w.attrs, elements=w.count)


def _pixel_vr(vr: bytes | None, attrs: ImageAttrs, encapsulated: bool) -> str:
    if vr in (b"OB", b"OW"):
        return vr.decode()
    return "OB" if encapsulated or attrs.bits_allocated <= 8 else "OW"


def _take_pixels(parts: DicomParts, top: _TopLevel, body: memoryview) -> None:
    """The pixel data value of a file read whole: native cut to what the image needs, or the items."""
    w, (vr, length, value) = top.walker, top.pixel
    _require_dimensions(top)
    if length == _UNDEFINED:
        try:
            end = w.fragments(value)
        except _Short:
            raise w.corrupt("the file ends inside the encapsulated pixel data") from None
        parts.encapsulated = True
    else:
        available = len(body) - value
        if available < min(length, parts.attrs.pixel_bytes()):
            raise ImageError(
                f"{w.name}: DICOM file is truncated (pixel data declares {length:,} bytes, "
                f"{max(available, 0):,} are present)"
            )
        end = value + min(length, max(parts.attrs.pixel_bytes(), 2))
    parts.pixel_vr = _pixel_vr(vr, parts.attrs, parts.encapsulated)
    parts.pixel_value = bytes(body[value:end])
    parts.elements = w.count


def _require_dimensions(top: _TopLevel) -> None:
    a = top.walker.attrs
    if a.rows is None or a.columns is None:
        raise ImageError(f"{top.walker.name}: DICOM file has no image (no Rows/Columns)")
    top.check_pixels()


# -- deflate -------------------------------------------------------------------------------------------


def _inflate(data: bytes, start: int, name: str) -> Iterator[bytes]:
    """The raw deflate stream from `start`, inflated in pieces of at most `_INFLATE_PIECE` bytes."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    src = memoryview(data)[start:]
    fed = 0
    try:
        while not d.eof:
            if d.unconsumed_tail:
                piece = d.decompress(d.unconsumed_tail, _INFLATE_PIECE)
            elif fed < len(src):
                piece = d.decompress(src[fed : fed + _INFLATE_PIECE], _INFLATE_PIECE)
                fed += _INFLATE_PIECE
            else:
                piece = d.flush()
                if piece:
                    yield piece
                return
            if piece:
                yield piece
    except zlib.error as exc:
        raise ImageError(f"{name}: deflated DICOM dataset is corrupt ({exc})") from None


def _inflated(data: bytes, start: int, name: str, max_pixels: int | None, with_pixels: bool,
              meta: bytes) -> DicomParts:
    """A deflated dataset: inflate while walking, refuse as soon as a bound is passed."""
    buf = bytearray()
    walker = _Walker(buf, implicit=False, little=True, name=name)
    top = _TopLevel(walker, max_pixels)
    pieces = _inflate(data, start, name)
    state = "end"
    while state != "pixels":
        if len(buf) > HEADER_ALLOWANCE:
            raise ImageTooLargeError(
                f"{name}: deflated DICOM dataset inflates past {HEADER_ALLOWANCE // 2**20} MiB before its "
                "pixel data"
            )
        piece = next(pieces, None)
        if piece is None:
            break
        first = not buf
        buf += piece
        if first and len(buf) >= 6:
            walker.implicit = walker.looks_implicit(0)  # as pydicom: the data over the transfer syntax
        state = top.advance()
    if state == "short":
        raise walker.corrupt("the deflated dataset ends inside an element")
    parts = _parts(top, meta, DEFLATED)
    if top.pixel is None or not with_pixels:
        return parts
    vr, length, value = top.pixel
    _require_dimensions(top)
    if length == _UNDEFINED:
        raise UnsupportedImageError(f"{name}: deflated DICOM with encapsulated pixel data is not supported")
    need = min(length, max(parts.attrs.pixel_bytes(), 2))
    chunks, have = [bytes(buf[value : value + need])], min(len(buf) - value, need)
    del buf[:]
    for piece in pieces:
        chunks.append(piece[: need - have])
        have += len(chunks[-1])
        if have >= need:
            break
    if have < need:
        raise ImageError(f"{name}: DICOM file is truncated (pixel data declares {length:,} bytes, "
                         f"{have:,} are present)")
    parts.pixel_vr = _pixel_vr(vr, parts.attrs, False)
    parts.pixel_value = b"".join(chunks)
    return parts
