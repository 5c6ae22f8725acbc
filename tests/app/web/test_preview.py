"""`POST /preview`: any upload the models read, as a PNG a browser shows, bounded like the other uploads."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.inputs.corpus import dicom
from tests.app.live_server import Server

pytestmark = pytest.mark.integration


def _png(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_a_dicom_is_rendered_as_the_models_read_it(web_server: Server) -> None:
    pixels = np.zeros((120, 80), np.uint16)
    pixels[:, 40:] = 4095  # right half white at 12 bits
    response = httpx.post(f"{web_server.url}/preview", files={"file": ("a.dcm", dicom(pixels), "application/dicom")})
    image = _png(response)
    assert image.size == (80, 120) and image.mode == "L"
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("80", "120")
    grey = np.asarray(image)
    assert grey[:, :40].max() == 0 and grey[:, 40:].min() == 255

    inverted = dicom(pixels, photometric="MONOCHROME1")
    grey = np.asarray(_png(httpx.post(f"{web_server.url}/preview",
                                      files={"file": ("b.dcm", inverted, "application/dicom")})))
    assert grey[:, :40].min() == 255 and grey[:, 40:].max() == 0  # MONOCHROME1: high values are dark


def test_a_large_image_is_previewed_at_most_1024_px_a_side(web_server: Server) -> None:
    out = io.BytesIO()
    Image.new("L", (2048, 1536), 128).save(out, format="PNG")
    response = httpx.post(f"{web_server.url}/preview", files={"file": ("big.png", out.getvalue(), "image/png")})
    assert _png(response).size == (1024, 768)
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("2048", "1536")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"hello, not an image", "image/png", 415, "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", 422, "invalid_image"),
        (b"", "image/png", 422, "empty_file"),
        (b"{}", "application/json", 415, "unsupported_content_type"),
    ],
)
def test_bad_uploads_are_refused_with_json(
    web_server: Server, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = httpx.post(f"{web_server.url}/preview", files={"file": ("x.png", content, content_type)})
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and "x.png" in response.json()["message"]
