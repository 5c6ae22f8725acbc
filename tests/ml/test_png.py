"""The fast grayscale PNG decoder (`ml.png`, through `ml.decoding.read_image_for`): pixel for pixel what Pillow
gives (`read_image`) for every filter type, bit depth and size, for files written by Pillow, OpenCV and by hand,
and reduced (for a model input far smaller than the image) exactly the mean of each block of Pillow's pixels;
for a broken or hostile file, what `read_image` does (the same pixels or the same error), with the bounds held
before anything is inflated."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ml.decoding
from ml import png
from ml.decoding import read_image_for, read_images_for, reduction_for
from ml.errors import ImageError, ImageTooLargeError
from ml.imaging import read_image

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "data" / "samples"
SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filtered(levels: np.ndarray, depth: int, filters: list[int]) -> bytes:
    """PNG's filtered rows of a gray image: each row's filter type, then its bytes as that filter predicts
    them from the original bytes (the encoder's side, so it can be vectorised)."""
    bpp = depth // 8
    data = levels.astype(">u2").view(np.uint8) if depth == 16 else levels.astype(np.uint8)
    data = data.reshape(levels.shape[0], -1).astype(np.int64)
    up = np.vstack([np.zeros_like(data[:1]), data[:-1]])
    left = np.hstack([np.zeros_like(data[:, :bpp]), data[:, :-bpp]])
    upleft = np.hstack([np.zeros_like(up[:, :bpp]), up[:, :-bpp]])
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    predictions = [np.zeros_like(data), left, up, (left + up) // 2, paeth]
    rows = [np.concatenate([[kind], (data[r] - predictions[kind][r]) % 256]) for r, kind in enumerate(filters)]
    return np.array(rows, np.uint8).tobytes()


def _png(levels: np.ndarray, depth: int = 8, filters: list[int] | int = 4, *, before: bytes = b"",
         interlace: int = 0, stream: bytes | None = None, idat_parts: int = 3) -> bytes:
    """A gray PNG written by hand: `filters` per row (or one for all), `before`: chunks before the image data,
    `stream`: the zlib stream to send instead of the image's, split into `idat_parts` IDAT chunks."""
    height, width = levels.shape
    kinds = [filters] * height if isinstance(filters, int) else filters
    if stream is None:
        stream = zlib.compress(_filtered(levels, depth, kinds), 6)
    step = -(-len(stream) // idat_parts)
    idat = b"".join(_chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, interlace)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + before + idat + _chunk(b"IEND", b"")


def _levels(height: int, width: int, depth: int, seed: int = 0) -> np.ndarray:
    """Noise over a gradient: every filter's every branch (Paeth's ties too) and both ends of the range."""
    rng = np.random.default_rng(seed)
    top = 255 if depth == 8 else 65535
    ramp = np.add.outer(np.arange(height), np.arange(width)) * (top // max(1, height + width))
    levels = (ramp + rng.integers(0, top // 8, (height, width))) % (top + 1)
    levels.flat[:: max(1, levels.size // 7)] = top
    return levels


def _taken(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The calls that reach `ml.png` (and give an image back) from `read_image_for`."""
    taken: list[object] = []
    gray_images = png.gray_images

    def spy(*args: object) -> list[np.ndarray] | None:
        images = gray_images(*args)
        if images is not None:
            taken.append(args)
        return images

    monkeypatch.setattr(ml.decoding, "gray_images", spy)
    return taken


def block_means(image: np.ndarray, reduction: int) -> np.ndarray:
    """What a reduced decode must give for a decoded image (`read_image`'s levels over 255 or 65535): each
    block's integer sum of levels over its pixel count times the depth's maximum, in float32 (computed with
    numpy from the levels, apart from `ml.png`)."""
    if reduction == 1:
        return image
    for depth in (8, 16):
        top = 2**depth - 1
        levels = np.rint(image.astype(np.float64) * top).astype(np.int64)
        if np.array_equal(levels.astype(np.float32) / np.float32(top), image):
            break
    height, width = image.shape
    sums = np.add.reduceat(np.add.reduceat(levels, np.arange(0, height, reduction), axis=0),
                           np.arange(0, width, reduction), axis=1)
    rows = np.minimum(reduction, height - np.arange(0, height, reduction))
    cols = np.minimum(reduction, width - np.arange(0, width, reduction))
    return sums.astype(np.float32) / (np.outer(rows, cols) * top).astype(np.float32)


def _as_read_image(data: bytes, short_side: int = 28) -> None:
    """`read_image_for` gives what `read_image` gives: the same pixels (each block's mean where the fast path
    reduces), or the same error."""
    try:
        expected = read_image(data)
    except ImageError as exc:
        with pytest.raises(type(exc)) as raised:
            read_image_for(data, short_side=short_side)
        assert str(raised.value) == str(exc)
        return
    decoded = read_image_for(data, short_side=short_side)
    assert decoded.image.dtype == np.float32
    assert decoded.reduction in (1, reduction_for(decoded.width, decoded.height, short_side, 0))
    np.testing.assert_array_equal(decoded.image, block_means(expected, decoded.reduction))


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("filters", [0, 1, 2, 3, 4, "mixed"])
@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (23, 37), (200, 301)])
def test_every_filter_type_depth_and_size_decodes_as_pillow_does(
    depth: int, filters: int | str, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = _levels(*size, depth)
    kinds = list(np.random.default_rng(1).integers(0, 5, size[0])) if filters == "mixed" else filters
    data = _png(levels, depth, kinds)
    taken = _taken(monkeypatch)
    decoded = read_image_for(data)
    assert taken, "the fast path should take a plain gray PNG"
    expected = read_image(data)
    np.testing.assert_array_equal(decoded.image, expected)
    np.testing.assert_array_equal(expected, levels.astype(np.float32) / np.float32(255 if depth == 8 else 65535))
    offset = data.index(b"IDAT") + 4
    for reduction in png.REDUCTIONS:
        reduced = png.gray_image(data, offset, size[1], size[0], depth, reduction)
        assert reduced is not None and reduced.shape == (-(-size[0] // reduction), -(-size[1] // reduction))
        np.testing.assert_array_equal(reduced, block_means(expected, reduction))


def test_a_png_reduces_by_what_the_use_leaves_room_for(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _png(_levels(1024, 1000, 8))
    taken = _taken(monkeypatch)
    # 1000 px on the short side: 125 at 1/8 is under twice 64, 250 at 1/4 under twice 160
    for short_side, long_side, reduction in ((28, 0, 8), (64, 0, 4), (160, 0, 2), (224, 0, 2), (28, 1024, 1),
                                             (0, 0, 1), (600, 0, 1)):
        decoded = read_image_for(data, short_side=short_side, long_side=long_side)
        assert decoded.reduction == reduction
        assert (decoded.height, decoded.width) == (1024, 1000)  # the upload's size, whatever was decoded
        assert decoded.image.shape == (-(-1024 // reduction), -(-1000 // reduction))
    assert len(taken) == 7


@pytest.mark.parametrize("depth", [8, 16])
def test_a_png_for_a_model_and_an_overlay_inflates_once_and_gives_both_exactly(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _png(_levels(1024, 1000, depth), depth)
    full = read_image(data)
    taken = _taken(monkeypatch)
    model, shown = read_images_for(data, short_side=28, long_side=1024)
    assert len(taken) == 1 and (model.reduction, shown.reduction) == (8, 1)
    np.testing.assert_array_equal(model.image, block_means(full, 8))
    np.testing.assert_array_equal(model.image, read_image_for(data, short_side=28).image)  # what /predict takes
    np.testing.assert_array_equal(shown.image, full)
    model, shown = read_images_for(data, short_side=28, long_side=200)  # a small overlay: reduced too
    assert (model.reduction, shown.reduction) == (8, 4) and shown.image.shape == (256, 250)
    np.testing.assert_array_equal(shown.image, block_means(full, 4))
    model, shown = read_images_for(data, short_side=0, long_side=0)  # nothing asked: one full decode
    assert model.image is shown.image and model.reduction == 1
    np.testing.assert_array_equal(model.image, full)


def test_a_jpeg_for_a_model_and_an_overlay_decodes_each_as_alone() -> None:
    data = (SAMPLES / "person1951_bacteria_4882.jpeg").read_bytes()
    model, shown = read_images_for(data, short_side=28, long_side=1024)
    np.testing.assert_array_equal(model.image, read_image_for(data, short_side=28).image)
    np.testing.assert_array_equal(shown.image, read_image_for(data, long_side=1024).image)
    assert model.reduction == 8 and shown.reduction == 1
    model, shown = read_images_for(data, short_side=600, long_side=1024)  # the model needs every pixel
    assert model is shown and model.reduction == 1


def test_a_png_with_a_bad_reduction_is_a_programming_error() -> None:
    data = _png(_levels(16, 16, 8))
    with pytest.raises(ValueError, match="reduces by"):
        png.gray_image(data, data.index(b"IDAT") + 4, 16, 16, 8, 3)


def _written_by_libraries() -> dict[str, bytes]:
    with Image.open(SAMPLES / "nih_cxr_1024.png") as im:
        gray = im.convert("L")
    small = np.asarray(gray.resize((333, 251)))
    sixteen = small.astype(np.uint16) * 257 + np.arange(333, dtype=np.uint16) % 200
    out = {"sample": (SAMPLES / "nih_cxr_1024.png").read_bytes()}
    for level in (0, 1, 6, 9):
        for name, array in (("8", small), ("16", sixteen)):
            buf = io.BytesIO()
            Image.fromarray(array).save(buf, "PNG", compress_level=level)
            out[f"pillow-{name}bit-level{level}"] = buf.getvalue()
    buf = io.BytesIO()
    gray.save(buf, "PNG", optimize=True)
    out["pillow-8bit-optimize"] = buf.getvalue()
    strategies = {"default": cv2.IMWRITE_PNG_STRATEGY_DEFAULT, "filtered": cv2.IMWRITE_PNG_STRATEGY_FILTERED,
                  "huffman": cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, "rle": cv2.IMWRITE_PNG_STRATEGY_RLE,
                  "fixed": cv2.IMWRITE_PNG_STRATEGY_FIXED}
    for name, strategy in strategies.items():
        for bits, array in (("8", small), ("16", sixteen)):
            ok, encoded = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 9,
                                                       cv2.IMWRITE_PNG_STRATEGY, strategy])
            assert ok
            out[f"opencv-{bits}bit-{name}"] = encoded.tobytes()
    return out


WRITTEN = _written_by_libraries()


@pytest.mark.parametrize("name", list(WRITTEN))
def test_pngs_written_by_pillow_and_opencv_decode_as_pillow_does(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = WRITTEN[name]
    taken = _taken(monkeypatch)
    expected = read_image(data)
    np.testing.assert_array_equal(read_image_for(data).image, expected)
    reduced = read_image_for(data, short_side=28)
    assert len(taken) == 2 and reduced.reduction == (8 if expected.shape == (1024, 1024) else 4)
    np.testing.assert_array_equal(reduced.image, block_means(expected, reduced.reduction))


def test_a_png_with_an_orientation_in_its_text_or_interlaced_is_left_to_pillow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    levels = _levels(20, 30, 8)
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    cases = {
        "xmp": _png(levels, before=_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)),
        "raw-exif-text": _png(levels, before=_chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n  0\n")),
        "interlaced": _png(levels, interlace=1),
        "private-chunk": _png(levels, before=_chunk(b"prVt", b"x")),
    }
    taken = _taken(monkeypatch)
    for data in cases.values():
        _as_read_image(data)
    assert not taken
    assert read_image(cases["xmp"]).shape == (30, 20)  # Pillow turns it: so must serving


def _corrupt_cases() -> dict[str, bytes]:
    levels = _levels(40, 50, 8)
    good = _png(levels, filters=list(np.arange(40) % 5))
    ihdr_end = 8 + 25
    first_idat = good.index(b"IDAT") - 4
    stream = zlib.compress(_filtered(levels, 8, [4] * 40))
    cases = {f"truncated-at-{cut}": good[:cut] for cut in (20, 40, 60, len(good) // 2, len(good) - 30,
                                                            len(good) - 12, len(good) - 8, len(good) - 1)}
    cases["ihdr-crc"] = good[: ihdr_end - 4] + b"\x00\x00\x00\x00" + good[ihdr_end:]
    cases["idat-crc"] = good[: first_idat + 8 + 10] + bytes([good[first_idat + 18] ^ 1]) + good[first_idat + 19:]
    cases["idat-length-past-the-end"] = good[:first_idat] + struct.pack(">I", 10**6) + good[first_idat + 4:]
    cases["filter-type-5"] = _png(levels, stream=zlib.compress(b"\x05" + _filtered(levels, 8, [0] * 40)[1:]))
    cases["stream-too-short"] = _png(levels, stream=stream[: len(stream) // 2])
    cases["stream-one-row-short"] = _png(levels, stream=zlib.compress(_filtered(levels[:-1], 8, [1] * 39)))
    cases["stream-a-row-too-long"] = _png(levels, stream=zlib.compress(_filtered(_levels(41, 50, 8), 8, [1] * 41)))
    cases["stream-checksum-wrong"] = _png(levels, stream=stream[:-4] + bytes(4))
    cases["stream-checksum-missing"] = _png(levels, stream=stream[:-4])
    cases["garbage-after-the-stream"] = _png(levels, stream=stream + b"tail")
    cases["not-a-zlib-stream"] = _png(levels, stream=b"\x00" * 300)
    cases["no-iend"] = good[:-12]
    cases["chunk-after-idat"] = good[:-12] + _chunk(b"tEXt", b"a\x00b") + good[-12:]
    cases["text-bomb"] = _png(levels, before=_chunk(b"zTXt", b"c\x00\x00" + zlib.compress(b"x" * (2**25))))
    cases["bad-gamma"] = _png(levels, before=_chunk(b"gAMA", b"\x01"))
    return cases


CORRUPT = _corrupt_cases()


@pytest.mark.parametrize("name", list(CORRUPT))
def test_a_broken_png_gives_what_read_image_gives(name: str) -> None:
    _as_read_image(CORRUPT[name])


def test_a_huge_declared_size_is_refused_before_anything_is_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> None:
        raise AssertionError("inflated an image over the pixel limit")

    monkeypatch.setattr(ml.decoding, "gray_images", never)
    data = _png(np.zeros((2, 2), np.uint8))
    huge = data[:16] + struct.pack(">II", 50_000, 50_000) + data[24:]
    huge = huge[:12] + _chunk(b"IHDR", huge[16:29])[4:] + huge[33:]  # its checksum fixed
    with pytest.raises(ImageTooLargeError):
        read_image_for(huge, short_side=28)
    with pytest.raises(ImageTooLargeError, match="over the limit of 1,000"):
        read_image_for(_png(np.zeros((100, 100), np.uint8)), max_pixels=1000)


def test_a_stream_that_inflates_past_the_image_costs_only_the_image() -> None:
    """A 64 x 64 image whose stream inflates to 256 MiB: at most the rows the header declares are inflated."""
    stream = zlib.compress(bytes(64 * 65) + bytes(2**28), 9)
    data = _png(np.zeros((64, 64), np.uint8), stream=stream)
    offset = SIGNATURE.__len__() + 25 + 8
    tracemalloc.start()
    try:
        assert png.gray_image(data, offset, 64, 64, 8) is None  # more than the image: Pillow decides
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
    _as_read_image(data)  # Pillow decodes the rows it needs, as before


_FUZZ_SEEDS = [_png(_levels(24, 31, 8), 8, list(np.arange(24) % 5)), _png(_levels(17, 13, 16), 16, 4),
               _png(_levels(40, 40, 8), 8, 3, idat_parts=1)]


@st.composite
def _mutated_png(draw: st.DrawFn) -> bytes:
    """A gray PNG seed with one to four mutations anywhere after its signature: flipped bytes, a 4-byte
    field set to an extreme, a cut, an insertion or a deletion."""
    data = bytearray(draw(st.sampled_from(_FUZZ_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if len(data) <= 9:
            break
        pos = draw(st.integers(8, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "field", "cut", "insert", "delete")))
        if kind == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "field":
            data[pos : pos + 4] = struct.pack(">I", draw(st.sampled_from((0, 1, 255, 2**16, 2**31, 2**32 - 1))))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 32))]
    return bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_mutated_png())
def test_a_mutated_gray_png_gives_what_read_image_gives(data: bytes) -> None:
    _as_read_image(data)


# A fresh process imports ml.png, decodes a hand-written PNG of each depth through each loop (the full image
# and 4 px blocks) and prints what numba's dispatchers say of the on-disk cache, and whether every decode was
# Pillow's pixels
_IMPORT_AND_DECODE = """
import json, sys
import numpy as np
sys.path.insert(0, "tests/ml")
from test_png import _levels, _png, block_means
from ml import png
from ml.imaging import read_image
loops = list(png._DECODE.values())
right = []
for depth in (8, 16):
    data = _png(_levels(37, 41, depth), depth, [0, 1, 2, 3, 4, 3, 3, 4, 4, 1] * 3 + [4] * 7)
    full, blocks = png.gray_images(data, 8 + 25 + 8, 41, 37, depth, (1, 4))
    expected = read_image(data)
    right.append(bool(np.array_equal(full, expected) and np.array_equal(blocks, block_means(expected, 4))))
print(json.dumps({"hits": sum(sum(loop.stats.cache_hits.values()) for loop in loops),
                  "misses": sum(sum(loop.stats.cache_misses.values()) for loop in loops),
                  "cache_paths": sorted({str(loop.stats.cache_path) for loop in loops}), "right": right}))
"""


def _fresh_import(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _IMPORT_AND_DECODE], cwd=REPO_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_the_loops_compile_once_into_the_cache_folder_and_are_read_from_it_after(tmp_path: Path) -> None:
    cache = tmp_path / "numba"
    first = _fresh_import({"NUMBA_CACHE_DIR": str(cache)})
    assert first["right"] == [True, True]
    assert (first["hits"], first["misses"]) == (0, 4)  # compiled, all four written
    assert len(first["cache_paths"]) == 1 and first["cache_paths"][0].startswith(str(cache))
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert len([name for name in entries if name.endswith(".nbc")]) == 4

    second = _fresh_import({"NUMBA_CACHE_DIR": str(cache)})
    assert second["right"] == [True, True]
    assert (second["hits"], second["misses"]) == (4, 0)  # all four read, none compiled
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == entries  # and nothing added
    assert "compiled in memory" not in second["stderr"]

    # one entry cut short (a disk that filled up): that loop compiles in memory, the start goes on, and says so
    damaged = min(cache.rglob("*.nbc"))
    damaged.write_bytes(damaged.read_bytes()[:100])
    third = _fresh_import({"NUMBA_CACHE_DIR": str(cache)})
    assert third["right"] == [True, True]
    assert (third["hits"], third["misses"]) == (3, 1)
    assert "PNG decode loop not read from numba's cache" in third["stderr"]


def test_without_a_writable_cache_folder_the_loops_compile_in_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    # numba's only place to look is a folder that cannot be made (its parent is a file): a read-only image
    done = _fresh_import({"NUMBA_CACHE_DIR": str(blocked / "numba"),
                          "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator"})
    assert done["right"] == [True, True]
    assert (done["hits"], done["misses"]) == (0, 4)
    assert done["cache_paths"] == ["None"]


def _read_only_import(cache: Path, env: dict[str, str]) -> dict[str, object]:
    """`_fresh_import` in a mount namespace of its own where `cache` is bind-mounted read-only: what a pod with a
    read-only root file system sees of its image's cache folder."""
    script = (f'mount --bind "{cache}" "{cache}" && mount -o remount,bind,ro "{cache}" && '
              f'exec "{sys.executable}" -c "$0"')
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f'mount --bind "{cache}" "{cache}"'], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here to make a folder read-only: {probe.stderr.strip()}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, _IMPORT_AND_DECODE], cwd=REPO_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_a_read_only_cache_folder_is_copied_to_the_temporary_folder_and_read_there(tmp_path: Path) -> None:
    cache, scratch = tmp_path / "image-cache", tmp_path / "tmp"
    scratch.mkdir()
    assert _fresh_import({"NUMBA_CACHE_DIR": str(cache)})["misses"] == 4  # the image's build fills it
    entries = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    env = {"NUMBA_CACHE_DIR": str(cache), "TMPDIR": str(scratch), "NUMBA_CACHE_LOCATOR_CLASSES":
           "UserProvidedCacheLocator"}  # no other folder to fall back on, as in a pod

    first = _read_only_import(cache, env)
    assert first["right"] == [True, True]
    assert (first["hits"], first["misses"]) == (4, 0)  # read from the copy, none compiled
    copy = scratch / f"cxr-numba-cache-{os.getuid()}"
    assert len(first["cache_paths"]) == 1 and first["cache_paths"][0].startswith(str(copy))
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()) == entries
    assert [p.name for p in scratch.iterdir()] == [copy.name]  # no staging folder left behind

    again = _read_only_import(cache, env)  # the next process in the pod uses the copy already there
    assert (again["hits"], again["misses"]) == (4, 0) and again["cache_paths"] == first["cache_paths"]
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) == entries
