"""Each decoder bomb sent to a real API process with the default limits: it is refused with a 4xx, or
answered within the budget of one upload, measured by the process itself (peak resident memory above idle
and CPU time, from /proc), and liveness answers while it is being handled.

The same tests against the code before these bounds (main at 8b53c24, one fresh server per bomb, the
pixel limit then 60M, 2 shared cores) failed 21 of 24: a 1 GiB deflated DICOM answered 200 after 2.0-3.2 GB
and 3.8-7.2 s of CPU (before, as or after the pixel data); one declaring 60000 x 60000 got its 413 after
6.9 GB and 15.9 s; 3 million empty DICOM elements 1.0 GB and 14.2 s; a 64 px DICOM whose J2K codestream
claims 60000 px 3.8 GB, the same with JPEG 9.5 GB and 20.3 s; a zero RGBA PNG at the limit 2.1 GB and
6.3 s (a progressive RGB JPEG 1.8 GB, a deflate TIFF 1.8 GB); 2.5 million PNG chunks 6.9 s, 7 million
JPEG segments 511 MB and 7.4 s, one-pixel BMP runs 5.4 s; a 1 x 60M PNG and a 65535 x 1 one (at 224 px)
answered 500 (resizes of 188 GB and 13 GB).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from tests.security import bombs
from tests.security.budget import (
    BUDGET_BYTES,
    BUDGET_CPU_SECONDS,
    MAX_IMAGE_PIXELS,
    MAX_UPLOAD_BYTES,
    REFUSED_BYTES,
    REFUSED_CPU_SECONDS,
    Meter,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux /proc"),
]
log = logging.getLogger(__name__)

GiB = 2**30
SIDE = math.isqrt(MAX_IMAGE_PIXELS)  # a square image at the pixel limit (6324 px at 40M)
OK = (200,)


@dataclass(frozen=True)
class Bomb:
    id: str
    filename: str
    build: Callable[[], bytes]
    answers: tuple[int, ...]  # the statuses it may get; 200 means decoded within the budget
    error: str | None = None  # the error code of a refusal


def _j2k_claiming(side: int) -> bytes:
    codestream = bombs.j2k_codestream(np.zeros((64, 64), np.uint8))
    return bombs.encapsulated_dicom([bombs.j2k_with_size(codestream, side, side)], JPEG2000Lossless, 64, 64)


def _jpeg_claiming(side: int) -> bytes:
    frame = bombs.jpeg_with_size(bombs.jpeg(Image.new("L", (64, 64))), side, side)
    return bombs.encapsulated_dicom([frame], JPEGBaseline8Bit, 64, 64)


BOMBS = [
    # DICOM: inflation, elements, codestreams that disagree with the header, frames
    Bomb("deflated-dicom-1gib-before-pixels", "a.dcm", lambda: bombs.deflated_dicom(64, 64, before=GiB),
         (413,), "image_too_large"),
    Bomb("deflated-dicom-1gib-pixel-data", "b.dcm", lambda: bombs.deflated_dicom(64, 64, pixel_bytes=GiB), OK),
    Bomb("deflated-dicom-1gib-trailing", "c.dcm", lambda: bombs.deflated_dicom(64, 64, after=GiB), OK),
    Bomb("deflated-dicom-declaring-60000px", "d.dcm", lambda: bombs.deflated_dicom(60000, 60000, bits=8), (413,),
         "image_too_large"),
    Bomb("deflated-dicom-at-the-limit", "e.dcm", lambda: bombs.deflated_dicom(SIDE, SIDE), OK),
    Bomb("dicom-3m-empty-elements", "f.dcm", lambda: bombs.many_elements_dicom(3_000_000), (413,),
         "image_too_large"),
    Bomb("dicom-j2k-60000px-in-64px", "g.dcm", lambda: _j2k_claiming(60000), (422,), "invalid_image"),
    Bomb("dicom-jpeg-60000px-in-64px", "h.dcm", lambda: _jpeg_claiming(60000), (422,), "invalid_image"),
    Bomb("dicom-rle-one-byte-runs", "i.dcm",
         lambda: bombs.encapsulated_dicom([bombs.rle_literal_frame(3900, 3900)], RLELossless, 3900, 3900), OK),
    Bomb("dicom-rle-30mib-of-no-ops", "j.dcm",
         lambda: bombs.encapsulated_dicom([bombs.rle_noop_frame(30 * 2**20)], RLELossless, 4000, 4000),
         (415,), "unsupported_encoding"),  # (pydicom reports a failed decode as a RuntimeError)
    Bomb("dicom-100000-frames", "k.dcm",
         lambda: bombs.encapsulated_dicom([bombs.jpeg(Image.new("L", (64, 64)))], JPEGBaseline8Bit, 64, 64,
                                          number_of_frames=100_000), (413,), "image_too_large"),
    # PNG
    Bomb("png-zero-rgba-at-the-limit", "l.png", lambda: bombs.zero_png(SIDE, SIDE, mode="RGBA"), OK),
    Bomb("png-zero-over-the-limit", "m.png", lambda: bombs.zero_png(SIDE + 1, SIDE + 1, mode="L"), (413,),
         "image_too_large"),
    Bomb("png-2.5m-chunks", "n.png", lambda: bombs.png_many_chunks(2_500_000), (413,), "image_too_large"),
    Bomb("png-200-text-chunks-of-1mib", "o.png", lambda: bombs.png_text_bomb(200), (413,), "image_too_large"),
    Bomb("png-1x60m-strip", "p.png", lambda: bombs.zero_png(60_000_000, 1, mode="L"), (413,),
         "image_too_large"),
    Bomb("png-65535x1-strip", "q.png", lambda: bombs.zero_png(65535, 1, mode="L"), OK),
    # JPEG
    Bomb("jpeg-7m-empty-segments", "r.jpg", lambda: bombs.jpeg_many_markers(7_000_000), (413,),
         "image_too_large"),
    Bomb("jpeg-1000-progressive-scans", "s.jpg", lambda: bombs.jpeg_many_scans(4000, 4000, 1000), (413,),
         "image_too_large"),
    Bomb("jpeg-progressive-rgb-at-the-limit", "t.jpg",
         lambda: bombs.jpeg(Image.new("RGB", (SIDE, SIDE)), progressive=True, subsampling=0), OK),
    # TIFF and BMP
    Bomb("tiff-200k-pages", "u.tif", lambda: bombs.tiff_many_ifds(200_000), (413,), "image_too_large"),
    Bomb("tiff-page-loop", "v.tif", lambda: bombs.tiff_many_ifds(3, loop=True), (422,), "invalid_image"),
    Bomb("tiff-deflate-rgb-at-the-limit", "w.tif", lambda: bombs.tiff_deflate_zeros(SIDE, SIDE, "RGB"), OK),
    Bomb("bmp-rle-one-pixel-runs", "x.bmp", lambda: bombs.bmp_rle8(4000, 4000), (413,), "image_too_large"),
]


def _post(client: httpx.Client, name: str, data: bytes, route: str = "/predict") -> httpx.Response:
    return client.post(route, files=[("file", (name, data, "application/octet-stream"))])


@pytest.mark.parametrize("bomb", BOMBS, ids=[b.id for b in BOMBS])
def test_each_bomb_is_refused_or_decoded_within_the_budget(
    bomb: Bomb, security_client: httpx.Client, meter: Meter
) -> None:
    data = bomb.build()
    assert len(data) <= MAX_UPLOAD_BYTES, f"{bomb.id} is {len(data):,} bytes: over the upload limit"
    meter.start()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_post, security_client, bomb.filename, data)
        live = security_client.get("/health/live", timeout=30)  # while the bomb is in flight
        response = answer.result()
    cost = meter.cost()
    log.info("%s: %d in %.2f s wall, %s", bomb.id, response.status_code, response.elapsed.total_seconds(), cost)
    assert live.status_code == 200
    assert response.status_code in bomb.answers, f"{bomb.id}: {response.status_code} {response.text[:300]}"
    if response.status_code == 200:
        assert cost.peak_bytes <= BUDGET_BYTES and cost.cpu_seconds <= BUDGET_CPU_SECONDS, f"{bomb.id}: {cost}"
    else:
        assert response.json()["error"] == bomb.error, response.text
        assert cost.peak_bytes <= REFUSED_BYTES and cost.cpu_seconds <= REFUSED_CPU_SECONDS, f"{bomb.id}: {cost}"
