"""Overlays reduced to `max_side` and encoded as PNG, JPEG or WebP."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.explain.gradcam import overlay
from ml.explain.overlays import OVERLAY_FORMATS, encode_overlay, fit_within
from ml.imaging import read_image

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "nih_cxr_1024.png"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    image = read_image(SAMPLE)
    yy, xx = np.mgrid[0:7, 0:7]
    cam = np.exp(-((yy - 3) ** 2 + (xx - 2) ** 2) / 6).astype(np.float32)
    return overlay(fit_within(image, 512), cam)


def test_fit_within_reduces_the_longest_side_keeps_the_aspect_and_never_enlarges() -> None:
    image = np.random.default_rng(0).random((300, 1200), dtype=np.float32)
    small = fit_within(image, 600)
    assert small.shape == (150, 600) and small.dtype == np.float32
    # area averaging: the mean brightness is kept
    assert abs(float(small.mean()) - float(image.mean())) < 1e-3
    assert fit_within(image, 1200) is image and fit_within(image, 5000) is image
    assert fit_within(np.zeros((1, 5000), np.float32), 100).shape == (1, 100)  # a side never falls to 0
    with pytest.raises(ValueError, match="at least 1"):
        fit_within(image, 0)


@pytest.mark.parametrize("fmt", list(OVERLAY_FORMATS))
def test_each_encoding_decodes_to_the_overlay_within_its_stated_loss(rgb: np.ndarray, fmt: str) -> None:
    data = encode_overlay(rgb, fmt)
    with Image.open(io.BytesIO(data)) as im:
        assert Image.MIME[im.format] == OVERLAY_FORMATS[fmt]
        back = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert back.shape == rgb.shape
    error = back - rgb
    if fmt == "png":
        assert not error.any()
    else:  # lossy: PSNR over 40 dB (JPEG q90 gave 45.8, WebP q80 41.8 for the 1024 px overlay)
        psnr = 10 * np.log10(255**2 / (error**2).mean())
        assert psnr > 40, psnr


def test_jpeg_is_the_small_one_and_unknown_encodings_are_refused(rgb: np.ndarray) -> None:
    assert len(encode_overlay(rgb, "jpeg")) * 4 < len(encode_overlay(rgb, "png"))
    with pytest.raises(ValueError, match="unknown overlay format 'gif'"):
        encode_overlay(rgb, "gif")
    with pytest.raises(ValueError, match="uint8"):
        encode_overlay(rgb.astype(np.float32), "jpeg")
