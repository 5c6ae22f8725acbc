"""A bounded property-based fuzz of the image and DICOM decoders (Hypothesis, derandomised: the same
examples on every run, so CI never meets a new one by chance).

Seeds of every format and encoding the service reads are mutated (bytes flipped, header fields overwritten
with extreme values, regions cut, repeated or inserted). Whatever comes in, `read_image` gives a float32
image in [0, 1] or raises an `ImageError`, `probe_image` an `ImageInfo` or an `ImageError`, each within
the upload budget; through the real server every answer is a 4xx or a 200, never a 5xx.
"""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path
from typing import Self

import httpx
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from ml.errors import ImageError
from ml.imaging import ImageInfo, probe_image, read_image
from tests.security import bombs
from tests.security.budget import BUDGET_BYTES, BUDGET_CPU_SECONDS, MAX_IMAGE_PIXELS

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux /proc")

RNG = np.random.default_rng(0)
GRAY = (np.add.outer(np.arange(40), np.arange(48)) * 3 % 256).astype(np.uint8)  # 40 x 48, a gradient


def _pil(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _dicom(syntax: str, *, compress: str | None = None) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(bombs.file_meta(ExplicitVRLittleEndian)
                                    + bombs.encode_dataset(bombs.dx_header(40, 48, bits=16))))
    ds.BitsStored, ds.HighBit = 12, 11
    ds.WindowCenter, ds.WindowWidth, ds.RescaleSlope, ds.RescaleIntercept = 2000, 3000, 1, -10
    ds.add_new(0x7FE00010, "OW", (GRAY.astype("<u2") * 16).tobytes())
    if compress:
        ds.compress(compress)
    ds.file_meta.TransferSyntaxUID = compress or syntax
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return out.getvalue()


def _seeds() -> dict[str, bytes]:
    gray, rgb = Image.fromarray(GRAY), Image.fromarray(np.dstack([GRAY, GRAY[::-1], GRAY[:, ::-1]]))
    return {
        "png-gray": _pil(gray, "PNG"),
        "png-rgba": _pil(rgb.convert("RGBA"), "PNG"),
        "png-16bit": _pil(Image.fromarray(GRAY.astype(np.uint16) * 257), "PNG"),
        "png-palette": _pil(gray.convert("P"), "PNG"),
        "jpeg-gray": _pil(gray, "JPEG"),
        "jpeg-rgb-progressive": _pil(rgb, "JPEG", progressive=True),
        "tiff-16bit": _pil(Image.fromarray(GRAY.astype(np.uint16) * 257), "TIFF"),
        "tiff-deflate": _pil(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "bmp": _pil(gray, "BMP"),
        "bmp-rle": bombs.bmp_rle8(48, 40, literal=False),
        "dicom-explicit": _dicom(ExplicitVRLittleEndian),
        "dicom-implicit": _dicom(ImplicitVRLittleEndian),
        "dicom-deflated": _dicom(DeflatedExplicitVRLittleEndian),
        "dicom-rle": _dicom(ExplicitVRLittleEndian, compress=RLELossless),
        "dicom-j2k": _dicom(ExplicitVRLittleEndian, compress=JPEG2000Lossless),
        "dicom-jpeg": bombs.encapsulated_dicom([_pil(gray, "JPEG")], JPEGBaseline8Bit, 40, 48),
    }


SEEDS = _seeds()
EXTREMES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 60000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with one to six mutations, most of them in the first 400 bytes after its signature (the
    headers); one in sixteen may hit the signature itself."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    start = 0 if draw(st.integers(0, 15)) == 0 else 132 if name.startswith("dicom") else 8
    for _ in range(draw(st.integers(1, 6))):
        if len(data) <= start:
            break
        end = len(data) - 1
        pos = draw(st.one_of(st.integers(start, min(start + 400, end)), st.integers(start, end)))
        kind = draw(st.sampled_from(("flip", "field", "field", "cut", "insert", "delete", "repeat")))
        if kind == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "field":
            size, order = draw(st.sampled_from((2, 4))), draw(st.sampled_from("<>"))
            value = draw(st.sampled_from(EXTREMES)) % (1 << (8 * size))
            data[pos : pos + size] = struct.pack(order + ("H" if size == 2 else "I"), value)
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))] * draw(st.integers(1, 200))
    return bytes(data)


class _Self:
    """This process's peak memory and CPU time around one call (Linux /proc)."""

    def __enter__(self) -> Self:
        Path("/proc/self/clear_refs").write_text("5")
        self.rss, self.cpu = self._status("VmRSS"), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak, self.seconds = self._status("VmHWM") - self.rss, time.process_time() - self.cpu

    @staticmethod
    def _status(key: str) -> int:
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(key))
        return int(line.split()[1]) * 1024


def test_the_seeds_decode() -> None:
    for name, data in SEEDS.items():
        assert read_image(data).shape == (40, 48), name


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_images_decode_or_are_refused_within_the_budget(data: bytes) -> None:
    with _Self() as cost:
        try:
            out = read_image(data, max_pixels=MAX_IMAGE_PIXELS)
        except ImageError:
            out = None
        try:
            info = probe_image(data)
        except ImageError:
            info = None
    if out is not None:
        assert out.dtype == np.float32 and out.ndim == 2 and out.size > 0
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert info is None or isinstance(info, ImageInfo)
    assert cost.peak <= BUDGET_BYTES and cost.seconds <= BUDGET_CPU_SECONDS, (cost.peak, cost.seconds)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=mutated())
def test_mutated_uploads_get_a_4xx_or_a_200_never_a_5xx(data: bytes, security_client: httpx.Client) -> None:
    response = security_client.post("/predict", files=[("file", ("x.bin", data, "application/octet-stream"))])
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        assert response.json()["error"], response.text
