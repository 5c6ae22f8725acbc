"""`/gradcam` holds to the upload budget: its overlay is drawn at most `max_side` pixels on its longest side (1024
by default, 4096 at most), so a 40M-pixel upload costs its decode, not an overlay at its size.

Before `max_side`, the overlay was drawn and PNG-encoded at the upload's size: a 40M-pixel upload cost 839 MB
above idle and 4.6 s there (195 MB and 0.8 s for `/predict`; docs/security.md, "Upload decoding budget").
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.security import bombs
from tests.security.budget import BUDGET_BYTES, GRADCAM_CPU_SECONDS, MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, Meter

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux /proc"),
]
log = logging.getLogger(__name__)

SIDE = math.isqrt(MAX_IMAGE_PIXELS)  # 6324 px at 40M
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "nih_cxr_1024.png"


def _radiograph_jpeg(side: int) -> bytes:
    """The shipped 1024 px radiograph enlarged to `side` px with a little noise, as a JPEG (a real upload's
    content, so the CAM and the overlay see structure)."""
    with Image.open(SAMPLE) as im:
        big = np.asarray(im.convert("L").resize((side, side), Image.BILINEAR), dtype=np.int16)
    big = np.clip(big + np.random.default_rng(0).integers(-2, 3, big.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(big).save(out, "JPEG", quality=90)
    return out.getvalue()


UPLOADS = {
    "png-zero-rgba-at-the-limit": lambda: bombs.zero_png(SIDE, SIDE, mode="RGBA"),
    "radiograph-jpeg-at-the-limit": lambda: _radiograph_jpeg(SIDE),
}


@pytest.mark.parametrize("max_side", [None, 4096], ids=["default", "max_side=4096"])
@pytest.mark.parametrize("upload", list(UPLOADS))
def test_gradcam_of_an_upload_at_the_pixel_limit_stays_within_the_budget(
    upload: str, max_side: int | None, security_client: httpx.Client, meter: Meter
) -> None:
    data = UPLOADS[upload]()
    assert len(data) <= MAX_UPLOAD_BYTES
    files = [("file", ("xray", data, "application/octet-stream"))]
    small = [("file", ("small.png", SAMPLE.read_bytes(), "image/png"))]
    assert security_client.post("/gradcam", files=small).status_code == 200  # the CAM model built beforehand
    params = {} if max_side is None else {"max_side": max_side}
    meter.start()
    response = security_client.post("/gradcam", params=params, files=files)
    cost = meter.cost()
    log.info("/gradcam %s (%s): %d in %.2f s wall, %s", upload, max_side or "default max_side",
             response.status_code, response.elapsed.total_seconds(), cost)
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as im:
        assert im.format == "JPEG" and im.size == (max_side or 1024,) * 2
    assert cost.peak_bytes <= BUDGET_BYTES and cost.cpu_seconds <= GRADCAM_CPU_SECONDS, f"{upload}: {cost}"
