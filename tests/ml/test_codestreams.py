"""Tests for `ml.codestreams`: headers read without decoding, every count bounded."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from ml.codestreams import (
    MAX_J2K_TILES,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    MAX_PNG_TEXT_CHUNKS,
    MAX_TIFF_PAGES,
    check_bmp,
    check_png,
    j2k_frame,
    jpeg_frame,
    tiff_pages,
)
from ml.errors import ImageError, ImageTooLargeError
from tests.security import bombs


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize(("mode", "components"), [("L", 1), ("RGB", 3), ("CMYK", 4)])
@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_frame_header(mode: str, components: int, progressive: bool) -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 5000  # an APP1 segment before the frame header
    data = encoded(Image.new(mode, (123, 45)), "JPEG", progressive=progressive, exif=exif)
    frame = jpeg_frame(data, "x.jpg")
    assert (frame.width, frame.height, frame.components, frame.precision) == (123, 45, components, 8)


def test_jpeg_limits_and_damage() -> None:
    with pytest.raises(ImageTooLargeError, match=f"more than {MAX_JPEG_SEGMENTS:,} marker segments"):
        jpeg_frame(bombs.jpeg_many_markers(MAX_JPEG_SEGMENTS + 1), "x")
    assert jpeg_frame(bombs.jpeg_many_markers(MAX_JPEG_SEGMENTS - 10), "x").width == 8
    with pytest.raises(ImageTooLargeError, match="progressive JPEG has .* scans, over the limit of"):
        jpeg_frame(bombs.jpeg_many_scans(64, 64, MAX_JPEG_SCANS), "x")
    data = encoded(Image.new("L", (16, 16)), "JPEG")
    assert jpeg_frame(data[:2] + b"\x00\x00junk" + data[2:], "x").width == 16  # stray bytes are skipped
    for broken in (b"\xff\xd8", b"GIF89a", data[:20], b"\xff\xd8\xff\xda\x00\x02\xff\xd9"):
        with pytest.raises(ImageError):
            jpeg_frame(broken, "x")
    assert jpeg_frame(bombs.jpeg_with_size(data, 60000, 3), "x").width == 60000  # what the header claims


def test_j2k_frame_header_bare_and_in_a_jp2_file() -> None:
    pixels = np.zeros((40, 70), np.uint16)
    codestream = bombs.j2k_codestream(pixels)
    frame = j2k_frame(codestream, "x")
    assert (frame.width, frame.height, frame.components, frame.precision) == (70, 40, 1, 16)
    jp2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + struct.pack(">I4s", 8 + len(codestream), b"jp2c") + codestream
    assert j2k_frame(jp2, "x") == frame
    assert j2k_frame(bombs.j2k_with_size(codestream, 60000, 60000), "x").width == 60000


def test_j2k_tiles_and_damage() -> None:
    codestream = bombs.j2k_codestream(np.zeros((64, 64), np.uint8))
    at = codestream.index(b"\xff\x51")

    def siz(width: int, height: int, tile: int) -> bytes:
        fields = struct.pack(">IIIIIIII", width, height, 0, 0, tile, tile, 0, 0)
        return codestream[: at + 6] + fields + codestream[at + 38 :]

    assert j2k_frame(siz(64, 64, 1), "x").width == 64  # 4,096 one-pixel tiles: at the limit
    with pytest.raises(ImageTooLargeError, match=f"4,160 tiles, over the limit of {MAX_J2K_TILES:,}"):
        j2k_frame(siz(65, 64, 1), "x")
    for broken in (siz(64, 64, 0), codestream[:30], b"\x00" * 64):
        with pytest.raises(ImageError):
            j2k_frame(broken, "x")


def test_png_chunks_are_counted() -> None:
    check_png(bombs.png_many_chunks(100), "x")
    with pytest.raises(ImageTooLargeError, match=f"more than {MAX_PNG_CHUNKS:,} chunks"):
        check_png(bombs.png_many_chunks(MAX_PNG_CHUNKS), "x")
    check_png(bombs.png_text_bomb(MAX_PNG_TEXT_CHUNKS, inflated=1000), "x")
    with pytest.raises(ImageTooLargeError, match="compressed text or profile chunks"):
        check_png(bombs.png_text_bomb(MAX_PNG_TEXT_CHUNKS + 1, inflated=1000), "x")


def test_tiff_pages_are_counted_and_loops_refused() -> None:
    pages = [Image.new("L", (8, 8), i) for i in range(5)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    assert tiff_pages(out.getvalue(), "x") == 5
    assert tiff_pages(encoded(Image.new("I;16", (8, 8)), "TIFF"), "x") == 1
    assert tiff_pages(bombs.tiff_many_ifds(MAX_TIFF_PAGES), "x") == MAX_TIFF_PAGES
    with pytest.raises(ImageTooLargeError, match=f"more than {MAX_TIFF_PAGES:,} pages"):
        tiff_pages(bombs.tiff_many_ifds(MAX_TIFF_PAGES + 1), "x")
    with pytest.raises(ImageError, match="loop"):
        tiff_pages(bombs.tiff_many_ifds(3, loop=True), "x")


def test_bmp_run_length_data_is_bounded() -> None:
    check_bmp(bombs.bmp_rle8(500, 500), "x")  # 0.5 MB of runs: decoded
    check_bmp(encoded(Image.new("L", (4000, 1000)), "BMP"), "x")  # uncompressed: any size the limit allows
    with pytest.raises(ImageTooLargeError, match="run-length-encoded BMP data over 2 MiB"):
        check_bmp(bombs.bmp_rle8(1200, 1000), "x")
