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
* The pixel count is checked from the header before anything is decoded (decompression bombs), and
  every failure is an `ImageError` (or subclass) with a message that names the input.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from ml.errors import CXRError, ImageError, ImageTooLargeError, UnsupportedImageError

if TYPE_CHECKING:  # pydicom is imported lazily: most callers never meet a DICOM file
    from pydicom import Dataset

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000
# Formats Pillow may try; the others (EPS through Ghostscript, exotic plugins) are not hospital inputs.
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_INT16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")

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
    data: bytes | None
    head: bytes  # the first 132 bytes, enough to spot a DICOM preamble

    def stream(self) -> io.BufferedIOBase:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # noqa: SIM115

    def pil_source(self) -> Path | io.BytesIO:
        # A path (not an open file) so that Pillow closes what it opens.
        return io.BytesIO(self.data) if self.data is not None else self.path

    @property
    def is_dicom(self) -> bool:
        has_dcm_suffix = self.path is not None and self.path.suffix.lower() in (".dcm", ".dicom")
        return self.head[128:132] == b"DICM" or has_dcm_suffix


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
            return _dicom_info(_dcmread(inp, stop_before_pixels=True), inp)
        with _open_pil(inp) as im:
            return _pil_info(im)
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
        return _Input(name="<bytes>", path=None, data=data, head=data[:132])
    path = Path(source)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(132)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return _Input(name=str(path), path=path, data=None, head=head)


def _check_pixels(inp: _Input, width: int, height: int, frames: int, max_pixels: int | None) -> None:
    total = width * height * frames
    if max_pixels is not None and total > max_pixels:
        size = f"{width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
        raise ImageTooLargeError(
            f"{inp.name}: image is {size} = {total:,} pixels, over the limit of {max_pixels:,}"
        )


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ _LUMA


# -- Pillow formats ----------------------------------------------------------------------------------


def _open_pil(inp: _Input) -> Image.Image:
    try:
        return Image.open(inp.pil_source(), formats=PIL_FORMATS)
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


def _pil_info(im: Image.Image) -> ImageInfo:
    width, height = im.size
    return ImageInfo(
        format=im.format or "unknown",
        width=width,
        height=height,
        frames=getattr(im, "n_frames", 1),
        mode=im.mode,
        bit_depth=_pil_bit_depth(im),
    )


def _read_pil(inp: _Input, max_pixels: int | None) -> np.ndarray:
    with _open_pil(inp) as im:
        _check_pixels(inp, im.width, im.height, 1, max_pixels)
        try:
            im.load()
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{inp.name}: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{inp.name}: image data is truncated or corrupt ({exc})") from None
        ImageOps.exif_transpose(im, in_place=True)  # JPEG/TIFF orientation tag, as viewers show it
        return _pil_to_gray(im)


def _pil_to_gray(im: Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1], scaled by the bit depth of the mode."""
    if im.mode == "1":
        return np.asarray(im, dtype=np.float32)
    if im.mode in _INT16_MODES:
        return np.asarray(im).astype(np.float32) / 65535.0
    if im.mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            return (arr / 65535.0).astype(np.float32)  # 16-bit data that Pillow holds as int32
        if im.mode == "F" and lo >= 0 and hi <= 1:
            return arr.astype(np.float32)
        logger.warning("mode %s values span [%g, %g]: min-max scaled", im.mode, lo, hi)
        return _minmax(arr)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")  # PA, CMYK, YCbCr, ...
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        return arr
    has_alpha = im.mode in ("LA", "RGBA")
    color = arr[..., :-1] if has_alpha else arr
    gray = color[..., 0] if color.shape[-1] == 1 else _luminance(color)
    return (gray * arr[..., -1] if has_alpha else gray).astype(np.float32)


# -- DICOM -------------------------------------------------------------------------------------------


def _dcmread(inp: _Input, *, stop_before_pixels: bool = False) -> Dataset:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    force = inp.head[128:132] != b"DICM"  # a .dcm file without the preamble (older writers)
    try:
        with inp.stream() as fh:
            ds = pydicom.dcmread(fh, force=force, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise ImageError(f"{inp.name}: not a valid DICOM file ({exc})") from None
    except (EOFError, OSError, ValueError) as exc:
        raise ImageError(f"{inp.name}: DICOM file is truncated or corrupt ({exc})") from None
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        # No file meta (bare dataset): record the encoding pydicom found, which the decoders need.
        implicit, little = ds.original_encoding
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
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
        frames=int(ds.get("NumberOfFrames") or 1),
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


def _read_dicom(inp: _Input, max_pixels: int | None) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

    ds = _dcmread(inp)
    info = _dicom_info(ds, inp)
    _check_pixels(inp, info.width, info.height, info.frames, max_pixels)
    if "PixelData" not in ds:
        raise ImageError(f"{inp.name}: DICOM file has no pixel data")
    _check_codec(ds, inp)
    try:
        arr = pixel_array(ds, index=0 if info.frames > 1 else None)
    except (ValueError, EOFError) as exc:
        raise ImageError(f"{inp.name}: DICOM pixel data is truncated or corrupt ({exc})") from None
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedImageError(f"{inp.name}: cannot decode {info.transfer_syntax}: {exc}") from None

    if info.photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:  # colour (pydicom returns RGB): luminance scaled by the stored bit depth
        return np.clip(_luminance(arr) / float(2 ** int(ds.get("BitsStored", 8)) - 1), 0, 1)

    values = apply_modality_lut(arr, ds)
    try:
        values = apply_voi_lut(values, ds)
    except ValueError as exc:  # e.g. a zero window width: show the image unwindowed rather than fail
        logger.warning("%s: VOI LUT/window ignored (%s)", inp.name, exc)
    out = _minmax(np.asarray(values, dtype=np.float64))
    return 1.0 - out if info.photometric == "MONOCHROME1" else out
