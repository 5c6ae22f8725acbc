"""Decode hospital images (PNG, JPEG, TIFF, BMP and DICOM) into float32 grayscale arrays in [0, 1].

Used by the dataset adapters, the CLI and the HTTP API, so every input goes through the same rules:

* Bit depth is read before scaling. 8-bit data is divided by 255 and 16-bit data by 65535: the depth
  of the *container*, not the bits a file happens to use, so a 12-bit radiograph stored in a 16-bit PNG
  comes out in [0, 0.0625]. Guessing the used bits from the pixel values would make each image's
  brightness depend on its own content. (Pillow's int32 mode `I` is read as 16-bit when its values fit.)
* Colour is turned into luminance (ITU-R BT.601 weights); alpha is composited on black.
* DICOM values are physical units, not display levels: the Modality LUT (or Rescale Slope/Intercept)
  is applied, then the VOI LUT or Window Center/Width, then MONOCHROME1 is inverted (after the window,
  which is defined on the stored values), and the result is min-max scaled. Multi-frame DICOM gives its
  first frame. Compressed transfer syntaxes decode through pydicom's plugins (pylibjpeg, Pillow).
* Decoding costs what the pixel count says, nothing more (decompression bombs). The pixel count is
  checked from the header before anything is decoded; the structure around the pixels is bounded before
  a decoder sees it (`ml.codestreams`: JPEG segments and scans, PNG chunks, TIFF pages, BMP run lengths,
  the frame inside a DICOM file, which must match Rows and Columns; `ml.dicom_file`: DICOM elements and
  a deflated dataset's inflation); an image over `STRIP_PIXELS` converts to float in strips, so it
  costs its decoded size plus 4 bytes per pixel of output. Every failure is an `ImageError` (or
  subclass) with a message that names the input.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image

from ml import codestreams
from ml.dicom_file import split_dicom
from ml.errors import CXRError, ImageError, ImageTooLargeError, UnsupportedImageError

if TYPE_CHECKING:  # pydicom is imported lazily: most callers never meet a DICOM file
    from pydicom import Dataset

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000
# Longest side accepted (DICOM's own limit): a 1 x 60M strip fits any pixel limit, yet Pillow keeps a
# pointer per row (480 MB) and a strip resized to a square input would be gigabytes.
MAX_SIDE = 65_535
# Formats Pillow may try; the others (EPS through Ghostscript, exotic plugins) are not hospital inputs.
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
# Luminance weights of R, G, B (`_weighted_sum`); for 8-bit channels also scaled to [0, 1], as is one gray or
# alpha channel
_LUMA = tuple(np.float32(w) for w in (0.299, 0.587, 0.114))
_LUMA_8BIT = tuple(np.float32(w / 255.0) for w in (0.299, 0.587, 0.114))
_UNIT_8BIT = (np.float32(1 / 255.0),)
_INT16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# Images up to STRIP_PIXELS convert in one piece (the 1024 px hot path), larger ones in row strips of
# about PIECE_PIXELS, so no float64 or RGB float copy of a large image ever exists. Gray values are the same
# either way.
STRIP_PIXELS = 4_000_000
PIECE_PIXELS = 2**19
# Transfer syntaxes whose frames are JPEG or JPEG-LS, and JPEG 2000 (HTJ2K included)
_DICOM_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
               "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_DICOM_J2K = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
              "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
              "1.2.840.10008.1.2.4.203")
_DICOM_RLE = "1.2.840.10008.1.2.5"

ImageInput = str | Path | bytes


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an image says, read without decoding the pixels."""

    format: str  # "PNG", "JPEG", "TIFF", "BMP" or "DICOM"
    width: int
    height: int
    frames: int
    mode: str  # Pillow mode ("L", "I;16", "RGB", ...); for DICOM the photometric interpretation
    bit_depth: int  # bits per sample of the container (DICOM: Bits Stored)
    photometric: str | None = None  # DICOM only
    transfer_syntax: str | None = None  # DICOM only: "name (UID)"

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


@dataclass(frozen=True)
class _Input:
    name: str  # for messages
    path: Path | None
    data: bytes  # the whole file: every check below reads it, and decoders get it from memory

    @property
    def is_dicom(self) -> bool:
        has_dcm_suffix = self.path is not None and self.path.suffix.lower() in (".dcm", ".dicom")
        return self.data[128:132] == b"DICM" or has_dcm_suffix


def read_image(source: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `source` (a path or the file's bytes) into a float32 HxW array in [0, 1].

    `max_pixels` bounds width*height (times frames for DICOM), checked from the header before the
    decode; None disables our check (Pillow still refuses images over twice `Image.MAX_IMAGE_PIXELS`).
    """
    inp = _open_input(source)
    try:
        return _read_dicom(inp, max_pixels) if inp.is_dicom else _read_pil(inp, max_pixels)
    except CXRError:
        raise
    except Exception as exc:  # a hostile or broken file must never surface as a raw library error
        raise ImageError(f"{inp.name}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def probe_image(source: ImageInput) -> ImageInfo:
    """Read the header of `source` only: format, size, frames, mode and bit depth."""
    inp = _open_input(source)
    try:
        if inp.is_dicom:
            return _dicom_info(_dcmread(inp, max_pixels=None, with_pixels=False), inp)
        pages = _check_container(inp)
        with _open_pil(inp) as im:
            return _pil_info(im, pages)
    except CXRError:
        raise
    except Exception as exc:
        raise ImageError(f"{inp.name}: cannot read image header ({type(exc).__name__}: {exc})") from exc


# -- input -------------------------------------------------------------------------------------------


def _open_input(source: ImageInput) -> _Input:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise ImageError("<bytes>: empty file (0 bytes)")
        return _Input(name="<bytes>", path=None, data=data)
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return _Input(name=str(path), path=path, data=data)


def _check_pixels(
    inp: _Input, width: int, height: int, frames: int, max_pixels: int | None, samples: int = 1
) -> None:
    """Refuse an image over `max_pixels` (DICOM counts frames and colour samples: its decoders hold
    several full-size buffers per sample) or with a side over `MAX_SIDE`."""
    if max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(
            f"{inp.name}: image is {width}x{height}, a side longer than {MAX_SIDE:,} pixels"
        )
    total = width * height * frames * samples
    if max_pixels is not None and total > max_pixels:
        size = f"{width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
        unit = "pixels" if samples == 1 else f"values ({samples} samples per pixel, each counted)"
        raise ImageTooLargeError(
            f"{inp.name}: image is {size} = {total:,} {unit}, over the limit of {max_pixels:,}"
        )


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _weighted_sum(channels: np.ndarray, weights: tuple[np.float32, ...]) -> np.ndarray:
    """The sum over the first len(weights) channels of `channels[..., c] * weights[c]` in float32, a channel
    at a time into one buffer: colour converts without a float copy of every channel (for 8-bit RGBA four
    times faster than that copy, which was most of a large PNG's decode)."""
    out = np.empty(channels.shape[:-1], dtype=np.float32)
    term = np.empty_like(out)
    np.multiply(channels[..., 0], weights[0], out=out)
    for c in range(1, len(weights)):
        np.multiply(channels[..., c], weights[c], out=term)
        out += term
    return out


def _pieces(height: int, width: int) -> list[tuple[slice, slice]]:
    """The whole image if it is small, else row strips of about `PIECE_PIXELS` pixels (at least one row:
    `MAX_SIDE` keeps a row far smaller)."""
    whole = slice(0, width)
    if height * width <= STRIP_PIXELS:
        return [(slice(0, height), whole)]
    rows = max(1, PIECE_PIXELS // max(width, 1))
    return [(slice(top, min(top + rows, height)), whole) for top in range(0, height, rows)]


# -- Pillow formats ----------------------------------------------------------------------------------


def _check_container(inp: _Input) -> int:
    """Bound the structure around the pixels before Pillow parses it; the number of pages."""
    data, name = inp.data, inp.name
    if data.startswith(b"\x89PNG"):
        codestreams.check_png(data, name)
    elif data.startswith(b"\xff\xd8"):
        codestreams.jpeg_frame(data, name)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return codestreams.tiff_pages(data, name)
    elif data.startswith(b"BM"):
        codestreams.check_bmp(data, name)
    return 1


def _open_pil(inp: _Input) -> Image.Image:
    try:
        return Image.open(io.BytesIO(inp.data), formats=PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{inp.name}: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{inp.name}: not a recognised image (expected {', '.join(PIL_FORMATS)} or DICOM)"
        ) from None


def _pil_bit_depth(im: Image.Image) -> int:
    if im.mode == "1":
        return 1
    if im.mode in _INT16_MODES:
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 8


def _pil_info(im: Image.Image, pages: int) -> ImageInfo:
    width, height = im.size
    return ImageInfo(
        format=im.format or "unknown",
        width=width,
        height=height,
        # TIFF: our own bounded count (Pillow's n_frames parses every page); others read it from a header
        frames=pages if im.format == "TIFF" else getattr(im, "n_frames", 1),
        mode=im.mode,
        bit_depth=_pil_bit_depth(im),
    )


def _read_pil(inp: _Input, max_pixels: int | None) -> np.ndarray:
    _check_container(inp)
    with _open_pil(inp) as im:
        _check_pixels(inp, im.width, im.height, 1, max_pixels)
        orientation = _load_pil(im, inp)
        gray = _pil_to_gray(im, inp)
    return _orient(gray, orientation)  # the JPEG/TIFF orientation tag, as viewers show the image


def _load_pil(im: Image.Image, inp: _Input) -> int:
    """Decode an opened Pillow image, its failures as ours; returns its EXIF orientation (1: none)."""
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{inp.name}: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{inp.name}: image data is truncated or corrupt ({exc})") from None
    return im.getexif().get(ExifTags.Base.Orientation, 1)


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """`image` turned as EXIF orientation 2-8 asks (what `ImageOps.exif_transpose` does to the pixels),
    on the float array after the decoded image is freed, so the turn never holds two decoded copies."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.T,
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.T[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return image if turned is None else np.ascontiguousarray(turned(image))


def _pil_to_gray(im: Image.Image, inp: _Input) -> np.ndarray:
    """Grayscale float32 in [0, 1], scaled by the bit depth of the mode; large images in strips."""
    width, height = im.size
    wide = _wide_range(im, inp) if im.mode in ("I", "F") else None
    pieces = _pieces(height, width)
    if len(pieces) == 1:
        return _gray(im, wide)
    out = np.empty((height, width), dtype=np.float32)
    for rows, cols in pieces:
        out[rows, cols] = _gray(im.crop((cols.start, rows.start, cols.stop, rows.stop)), wide)
    return out


def _wide_range(im: Image.Image, inp: _Input) -> tuple[float, float]:
    """The value range of a 32-bit image (mode I or F), which decides its scaling; read in strips."""
    lo, hi = np.inf, -np.inf
    for rows, cols in _pieces(im.height, im.width):
        piece = im if (rows.stop - rows.start, cols.stop - cols.start) == (im.height, im.width) else im.crop(
            (cols.start, rows.start, cols.stop, rows.stop)
        )
        arr = np.asarray(piece)
        lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError(f"{inp.name}: floating-point image holds NaN or infinite values")
    if not (im.mode == "I" and lo >= 0 and hi <= 65535) and not (im.mode == "F" and lo >= 0 and hi <= 1):
        logger.warning("mode %s values span [%g, %g]: min-max scaled", im.mode, lo, hi)
    return lo, hi


def _gray(im: Image.Image, wide: tuple[float, float] | None) -> np.ndarray:
    """One piece (the whole image or a strip) as grayscale float32; `wide`: a 32-bit image's range."""
    if im.mode == "1":
        return np.asarray(im, dtype=np.float32)
    if im.mode in _INT16_MODES:
        return np.asarray(im).astype(np.float32) / 65535.0
    if im.mode in ("I", "F"):
        assert wide is not None
        lo, hi = wide
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            return (arr / 65535.0).astype(np.float32)  # 16-bit data that Pillow holds as int32
        if im.mode == "F" and lo >= 0 and hi <= 1:
            return arr.astype(np.float32)
        if hi <= lo:
            return np.zeros(arr.shape, dtype=np.float32)
        return ((arr - lo) / (hi - lo)).astype(np.float32)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")  # PA, CMYK, YCbCr, ...
    if im.mode == "L":
        return np.asarray(im, dtype=np.float32) / 255.0
    arr = np.asarray(im)  # uint8, channels last: LA, RGB or RGBA
    gray = _weighted_sum(arr, _UNIT_8BIT if im.mode == "LA" else _LUMA_8BIT)
    if im.mode in ("LA", "RGBA"):  # composited on black
        gray *= _weighted_sum(arr[..., -1:], _UNIT_8BIT)
    return gray


# -- DICOM -------------------------------------------------------------------------------------------


def _dcmread(inp: _Input, *, max_pixels: int | None, with_pixels: bool) -> Dataset:
    """The dataset pydicom builds from the parts `split_dicom` keeps (image attributes, LUTs, pixels)."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    parts = split_dicom(inp.data, name=inp.name, max_pixels=max_pixels, with_pixels=with_pixels)
    meta = FileMetaDataset()
    if parts.meta:
        meta.update(read_dataset(io.BytesIO(parts.meta), is_implicit_VR=False, is_little_endian=True))
    ds = read_dataset(io.BytesIO(parts.header), is_implicit_VR=parts.implicit, is_little_endian=parts.little)
    if "TransferSyntaxUID" not in meta:
        # No file meta (bare dataset): record the encoding found, which the decoders need.
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if parts.implicit
            else ExplicitVRLittleEndian if parts.little else ExplicitVRBigEndian
        )
    ds.file_meta = meta
    if parts.pixel_value is not None:
        ds.add(DataElement(0x7FE00010, parts.pixel_vr, parts.pixel_value,
                           is_undefined_length=parts.encapsulated))
    return ds


def _dicom_info(ds: Dataset, inp: _Input) -> ImageInfo:
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageError(f"{inp.name}: DICOM file has no image (no Rows/Columns)")
    tsuid = ds.file_meta.TransferSyntaxUID
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    return ImageInfo(
        format="DICOM",
        width=int(ds.Columns),
        height=int(ds.Rows),
        frames=max(1, int(ds.get("NumberOfFrames") or 1)),
        mode=photometric,
        bit_depth=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0),
        photometric=photometric,
        transfer_syntax=f"{tsuid.name} ({tsuid})",
    )


def _check_codec(ds: Dataset, inp: _Input) -> None:
    from pydicom.pixels import get_decoder

    tsuid = ds.file_meta.TransferSyntaxUID
    try:
        available = get_decoder(tsuid).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise UnsupportedImageError(
            f"{inp.name}: no decoder is installed for DICOM transfer syntax '{tsuid.name}' ({tsuid}); "
            "supported here: uncompressed, RLE, JPEG, JPEG-LS and JPEG 2000"
        )


def _check_frame(ds: Dataset, info: ImageInfo, inp: _Input) -> None:
    """The first compressed frame's own header must describe the image the DICOM header describes: a
    decoder allocates what the codestream claims, whatever Rows and Columns say."""
    from pydicom.encaps import get_frame

    tsuid = str(ds.file_meta.TransferSyntaxUID)
    if tsuid not in _DICOM_JPEG and tsuid not in _DICOM_J2K:
        return  # native data is cut to Rows x Columns; RLE decoders allocate from Rows x Columns
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        frame = get_frame(ds.PixelData, 0, extended_offsets=offsets, number_of_frames=info.frames)
    except (ValueError, KeyError, IndexError) as exc:
        raise ImageError(f"{inp.name}: DICOM pixel data is truncated or corrupt ({exc})") from None
    kind = "JPEG" if tsuid in _DICOM_JPEG else "JPEG 2000"
    header = codestreams.jpeg_frame(frame, inp.name) if kind == "JPEG" else codestreams.j2k_frame(frame, inp.name)
    if (header.width, header.height) != (info.width, info.height):
        raise ImageError(
            f"{inp.name}: the {kind} frame is {header.width}x{header.height} pixels but the DICOM header "
            f"says {info.width}x{info.height}"
        )
    samples = int(ds.get("SamplesPerPixel") or 1)
    if header.components != samples or header.precision > 16:
        raise ImageError(
            f"{inp.name}: the {kind} frame has {header.components} components of {header.precision} bits; "
            f"the DICOM header says {samples} samples per pixel (at most 16 bits)"
        )


def _read_dicom(inp: _Input, max_pixels: int | None) -> np.ndarray:
    ds = _dcmread(inp, max_pixels=max_pixels, with_pixels=True)
    info = _dicom_info(ds, inp)
    _check_pixels(inp, info.width, info.height, info.frames, max_pixels, int(ds.get("SamplesPerPixel") or 1))
    if "PixelData" not in ds:
        raise ImageError(f"{inp.name}: DICOM file has no pixel data")
    _check_codec(ds, inp)
    _check_frame(ds, info, inp)
    arr, ybr = _decode_frame(ds, info, inp)
    del ds.PixelData  # the encoded copy is no longer needed while the float image is built
    return _dicom_to_gray(arr, ds, info, inp, ybr)


def _decode_frame(ds: Dataset, info: ImageInfo, inp: _Input) -> tuple[np.ndarray, bool]:
    """The first frame's stored values, and whether they are YBR colour still to turn into RGB (pydicom's
    `pixel_array` turns it in float32 over the whole image at once: 12 bytes a pixel)."""
    from pydicom.pixels import get_decoder
    from pydicom.pixels.decoders import RLELosslessDecoder
    from pydicom.pixels.utils import as_pixel_options

    tsuid = ds.file_meta.TransferSyntaxUID
    # pydicom's own RLE decoder is a Python loop (seconds for 32 MiB of one-byte runs); pylibjpeg-rle's is not
    rle = tsuid == _DICOM_RLE and "pylibjpeg" in RLELosslessDecoder.available_plugins
    try:
        arr, meta = get_decoder(tsuid).as_array(
            ds, index=0 if info.frames > 1 else None, validate=True, raw=False,
            decoding_plugin="pylibjpeg" if rle else "", **as_pixel_options(ds, as_rgb=False),
        )
    except (ValueError, EOFError) as exc:
        raise ImageError(f"{inp.name}: DICOM pixel data is truncated or corrupt ({exc})") from None
    except (AttributeError, KeyError) as exc:  # pydicom: "Missing required element: (0028,0101) ..."
        raise ImageError(f"{inp.name}: DICOM image attributes are missing or invalid ({exc})") from None
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedImageError(f"{inp.name}: cannot decode {info.transfer_syntax}: {exc}") from None
    return arr, arr.ndim == 3 and meta.get("photometric_interpretation") in ("YBR_FULL", "YBR_FULL_422")


def _dicom_to_gray(arr: np.ndarray, ds: Dataset, info: ImageInfo, inp: _Input, ybr: bool) -> np.ndarray:
    """The stored values through the LUTs to float32 in [0, 1] (module docstring), in strips."""
    from pydicom.pixels import apply_color_lut, convert_color_space

    pieces = _pieces(*arr.shape[:2])
    if info.photometric == "PALETTE COLOR" or arr.ndim == 3:  # colour: luminance scaled by the stored depth
        scale = float(2 ** int(ds.get("BitsStored", 8)) - 1)
        out = np.empty(arr.shape[:2], dtype=np.float32)
        for rows, cols in pieces:
            piece = arr[rows, cols]
            if info.photometric == "PALETTE COLOR":
                piece = apply_color_lut(piece, ds)
            elif ybr:
                piece = convert_color_space(piece, "YBR_FULL", "RGB")
            out[rows, cols] = np.clip(_weighted_sum(piece, _LUMA) / scale, 0, 1) if piece.ndim == 3 else piece
        return out

    values = _Presentation(ds, inp)
    if len(pieces) == 1:
        out = _minmax(np.asarray(values(arr), dtype=np.float64))
    else:  # the range first, then each strip scaled by it: never a float64 copy of the whole image
        lo, hi = np.inf, -np.inf
        for rows, cols in pieces:
            piece = values(arr[rows, cols])
            lo, hi = min(lo, float(piece.min())), max(hi, float(piece.max()))
        out = np.zeros(arr.shape, dtype=np.float32)
        if hi > lo:
            for rows, cols in pieces:
                piece = np.asarray(values(arr[rows, cols]), dtype=np.float64)
                out[rows, cols] = ((piece - lo) / (hi - lo)).astype(np.float32)
    if info.photometric == "MONOCHROME1":
        np.subtract(1.0, out, out=out)
    return out


class _Presentation:
    """Stored values to presentation values: the Modality LUT (or rescale), then the VOI LUT (or window).
    A VOI that pydicom refuses (e.g. a zero window width) is dropped once, for every strip alike."""

    def __init__(self, ds: Dataset, inp: _Input) -> None:
        self.ds, self.inp, self.voi = ds, inp, True

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut

        values = apply_modality_lut(stored, self.ds)
        if self.voi:
            try:
                return apply_voi_lut(values, self.ds)
            except ValueError as exc:  # show the image unwindowed rather than fail
                logger.warning("%s: VOI LUT/window ignored (%s)", self.inp.name, exc)
                self.voi = False
        return values
