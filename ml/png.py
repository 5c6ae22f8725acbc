"""The image data of a grayscale PNG (8 or 16 bits, not interlaced), inflated and unfiltered fast.

What a radiograph PNG costs to decode is its image data: inflating it (zlib) and undoing PNG's per-row
filters, of which Sub, Average and Paeth are sequential byte by byte (each byte's prediction needs the byte
just decoded). For the 1024 px sample zlib's inflate takes 4.0 ms and libpng's or Pillow's unfilter about
5 more. Here ISA-L inflates it (`isal`: 1.6 ms) and a compiled loop (numba) unfilters it (1.2-1.8 ms): the
left neighbour kept in a register rather than read back from memory, Paeth as selects without a branch to
mispredict (the form of stb_image's `stbi__paeth`), and two Average or Paeth rows interleaved, so the CPU
works on two chains of dependent bytes at once; each level is written out as its float32 value from a table
of numpy's quotients (`LEVELS`), exactly `read_image`'s. For a model whose input is far smaller than the image
(`ml.decoding` decides), a second loop keeps only each block's sum of levels (2, 4 or 8 pixels a side) and
never writes the full image: each block's mean, exact, is the reduced image.

Only the mechanics are here: the caller (`ml.decoding`) has Pillow read the header and every chunk before the
image data (its checks, checksums and errors), and gives the offset of the first IDAT's data. Anything this
module does not find exactly as expected (IDATs not running straight to IEND, a stream that is short, long,
corrupt or without its Adler-32, a filter type over 4) gives None, and the caller decodes with Pillow, which
then decides: so the pixels returned are always Pillow's, and errors are always Pillow's.

The inflate never produces more than the header's rows need (`max_length`), so a stream that inflates to
more (a decompression bomb in a small image) costs what the image does. IDAT checksums are not checked, as
Pillow does not check them either (zlib's Adler-32 over the inflated data is).

The four loops are ready when this module is imported, never compiled on a request: read from numba's on-disk
cache (about 1 s for the import, numba's own included) where a writable cache folder holds them (`_compiled`),
else compiled (about 9 s on a 2-core host and 150 MiB of resident memory: numba and LLVM) and written there,
or kept in memory alone where no folder is writable or an entry cannot be read back (logged). A cache folder
that holds entries but is read-only (an image's, under a read-only root file system) is first copied to the
temporary folder (`use_writable_cache_copy`), so a Kubernetes pod reads the loops its image compiled. They
release the GIL, so the API's pool threads decode side by side.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from isal import isal_zlib

_RAW = numba.types.Array(numba.types.uint8, 2, "C", readonly=True)
_OUT = numba.types.Array(numba.types.float32, 2, "C")
_LEVELS = numba.types.Array(numba.types.float32, 1, "C", readonly=True)
_SUMS = numba.types.Array(numba.types.int64, 2, "C")
_CHUNK = struct.Struct(">I4s")
_log = logging.getLogger(__name__)
# Each level's value in [0, 1]: numpy's float32 quotient, the one `read_image` computes
LEVELS = {8: np.arange(2**8, dtype=np.float32) / np.float32(2**8 - 1),
          16: np.arange(2**16, dtype=np.float32) / np.float32(2**16 - 1)}
for _table in LEVELS.values():
    _table.flags.writeable = False


@numba.njit(inline="always")
def _predict(kind: int, a: int, b: int, c: int) -> int:
    """The prediction of filter `kind` (1 Sub, 3 Average, 4 Paeth) from the bytes to the left (a), above (b)
    and above-left (c); Paeth's nearest of a, b, c to a + b - c (ties to a, then b) as selects, without a
    branch to mispredict (the form of stb_image's `stbi__paeth`)."""
    if kind == 1:
        return a
    if kind == 3:
        return (a + b) >> 1
    thresh = c * 3 - (a + b)
    lo = min(a, b)
    hi = max(a, b)
    return hi if thresh <= lo else (lo if hi <= thresh else c)


@numba.njit(inline="always")
def _emit(full: np.ndarray, columns: np.ndarray, levels: np.ndarray, r: int, i: int, level: int, keep: bool,
          reduce: bool) -> None:
    """What a decode does with each pixel's level: its float32 value into the full image (`keep`), and added
    to its column's sum over the current band of blocks (`reduce`; one sum per column, so no chain of
    additions to one place)."""
    if keep:
        full[r, i] = levels[level]
    if reduce:
        columns[i] += level


@numba.njit(inline="always")
def _pair(raw: np.ndarray, r: int, above: np.ndarray, full: np.ndarray, columns: np.ndarray, levels: np.ndarray,
          first: int, second: int, keep: bool, reduce: bool) -> None:
    """Rows r and r + 1 of an 8-bit image, filters `first` and `second` (3 or 4), unfiltered side by side,
    each byte handed to `_emit`: each row alone is a chain of dependent bytes, two interleaved keep the CPU
    twice as busy. `above` holds row r - 1 and is left holding row r + 1."""
    a0 = a1 = c0 = c1 = 0
    for i in range(above.shape[0]):
        b0 = np.int64(above[i])
        x0 = (np.int64(raw[r, i + 1]) + _predict(first, a0, b0, c0)) & 0xFF
        x1 = (np.int64(raw[r + 1, i + 1]) + _predict(second, a1, x0, c1)) & 0xFF
        above[i] = x1
        _emit(full, columns, levels, r, i, x0, keep, reduce)
        _emit(full, columns, levels, r + 1, i, x1, keep, reduce)
        a0, c0, a1, c1 = x0, b0, x1, x0


@numba.njit(inline="always")
def _finish_band(columns: np.ndarray, sums: np.ndarray, band: int, shift: int) -> None:
    """The column sums of a complete band of blocks summed across each block's columns into `sums`, and
    cleared for the next band."""
    for block in range(sums.shape[1]):
        total = 0
        for i in range(block << shift, min(columns.shape[0], (block + 1) << shift)):
            total += columns[i]
            columns[i] = 0
        sums[band, block] = total


@numba.njit(inline="always")
def _unfilter_row(kind: int, src: np.ndarray, up: np.ndarray, cur: np.ndarray, bpp: int) -> None:
    """Undo one row's filter (0-4) into `cur` (`up`: the row above, decoded). The byte `bpp` to the left (a)
    and the one above it (c) are carried in registers, not read back from memory."""
    n = cur.shape[0]
    if kind == 0:
        for i in range(n):
            cur[i] = src[i]
    elif kind == 2:
        for i in range(n):
            cur[i] = src[i] + up[i]  # stored modulo 256
    else:
        a1 = a2 = c1 = c2 = 0
        for i in range(n):
            b = np.int64(up[i])
            a = a1 if bpp == 1 else a2
            c = c1 if bpp == 1 else c2
            if kind == 1:
                x = (np.int64(src[i]) + a) & 0xFF
            elif kind == 3:
                x = (np.int64(src[i]) + ((a + b) >> 1)) & 0xFF
            else:
                x = (np.int64(src[i]) + _predict(4, a, b, c)) & 0xFF
            cur[i] = x
            a2, a1, c2, c1 = a1, x, c1, b


def _make_decoder(bpp: int, keep: bool, reduce: bool
                  ) -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], bool]:
    """The loop that unfilters the image data of a `bpp`-byte gray PNG (1: 8-bit, 2: 16-bit) into each
    pixel's float32 value (`keep`), each block's sum of levels (`reduce`), or both; compiled now
    (`_compiled`). The loop closes over these three constants alone (numba compiles it for them, and its
    on-disk cache keys an entry by them); what it calls is module-level and takes them as arguments."""

    def decode(raw: np.ndarray, full: np.ndarray, sums: np.ndarray, levels: np.ndarray, shift: int) -> bool:
        """Unfilter `raw` (each row: its filter type, then its bytes) keeping only the row above, into `full`
        (each level's value, `levels[level]`) and into `sums` (each block of 2**shift pixels a side, its sum
        of levels), as the loop was made; False for a filter type over 4."""
        height = raw.shape[0]
        n = raw.shape[1] - 1
        for r in range(height):
            if raw[r, 0] > 4:
                return False
        above = np.zeros(n, np.uint8)  # the first row's "above" is zeros, as PNG says
        cur = np.zeros(n, np.uint8)
        columns = np.zeros(n // bpp if reduce else 0, np.int64)
        last = (1 << shift) - 1  # row r is the last of its band of blocks when r & last == last
        r = 0
        while r < height:
            first = raw[r, 0]
            second = raw[r + 1, 0] if r + 1 < height else 0
            if (bpp == 1 and (first == 3 or first == 4) and (second == 3 or second == 4)
                    and (shift == 0 or r & last != last)):  # two rows of one band
                if first == 3 and second == 3:
                    _pair(raw, r, above, full, columns, levels, 3, 3, keep, reduce)
                elif first == 3:
                    _pair(raw, r, above, full, columns, levels, 3, 4, keep, reduce)
                elif second == 3:
                    _pair(raw, r, above, full, columns, levels, 4, 3, keep, reduce)
                else:
                    _pair(raw, r, above, full, columns, levels, 4, 4, keep, reduce)
                r += 2
            else:
                _unfilter_row(first, raw[r, 1:], above, cur, bpp)
                for j in range(n // bpp):
                    _emit(full, columns, levels, r, j,
                          np.int64(cur[j]) if bpp == 1 else np.int64(cur[2 * j]) << 8 | cur[2 * j + 1], keep,
                          reduce)
                above, cur = cur, above
                r += 1
            if reduce and ((r - 1) & last == last or r == height):
                _finish_band(columns, sums, (r - 1) >> shift, shift)
        return True

    return _compiled(decode)


def _compiled(loop: Callable[..., bool]) -> Callable[..., bool]:
    """`loop` compiled now for its one signature, from numba's on-disk cache where there is one and it can
    write it (`NUMBA_CACHE_DIR`, else the module's `__pycache__`, else the user's cache folder; an entry is
    used only for this source file's exact bytes, the loop's constants, this numba and this CPU), else compiled
    in memory: where no folder is writable (a read-only file system), and where an entry cannot be read back
    (a file cut short or damaged: logged, so a start never fails on its cache)."""
    signature = numba.types.boolean(_RAW, _OUT, _SUMS, _LEVELS, numba.types.int64)
    options = {"nogil": True, "boundscheck": False}
    dispatcher = None
    try:
        dispatcher = numba.njit(cache=True, **options)(loop)  # RuntimeError where no folder is writable
        dispatcher.compile(signature)
    except Exception as exc:  # noqa: BLE001 - retried without the cache, where a real fault raises again
        if dispatcher is not None:  # a folder was found, an entry in it could not be read back
            _log.warning("PNG decode loop not read from numba's cache in %s (%s: %s); compiled in memory: "
                         "remove that folder's entries to have them written again", dispatcher.stats.cache_path,
                         type(exc).__name__, exc)
        dispatcher = numba.njit(**options)(loop)
        dispatcher.compile(signature)
    dispatcher.disable_compile()  # any other argument types are a TypeError, never a compile on a request
    return dispatcher


def _writable(folder: str) -> bool:
    try:
        tempfile.TemporaryFile(dir=folder).close()  # numba's own test of a cache folder
    except OSError:
        return False
    return True


def use_writable_cache_copy() -> str | None:
    """Where `NUMBA_CACHE_DIR` names a folder that exists but this process cannot write (an image's cache under
    a read-only root file system: the Kubernetes pods), copy it once into the temporary folder and point numba
    there, returning the copy's path. Numba neither reads nor writes a cache folder it cannot write to, so
    without the copy every start would compile the loops again. The copy is made in a folder of its own and
    renamed into place, so processes starting side by side never read one half-written; one that is there
    already is used as it is."""
    folder = numba.config.CACHE_DIR  # NUMBA_CACHE_DIR, read when numba was imported ("" when unset)
    if not folder or not os.path.isdir(folder) or _writable(folder):
        return None
    target = Path(tempfile.gettempdir()) / f"cxr-numba-cache-{os.getuid()}"
    if not target.is_dir():
        try:
            staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
            shutil.copytree(folder, staging, dirs_exist_ok=True)  # keeps the source stamps entries are keyed by
            try:
                staging.rename(target)
            except OSError:  # another process renamed its copy first: use that one
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            _log.warning("numba's cache folder %s is read-only and could not be copied to %s (%s); the PNG decode "
                         "loops compile in memory", folder, target.parent, exc)
            return None
    numba.config.CACHE_DIR = str(target)
    _log.info("numba's cache folder %s is read-only: using a copy in %s", folder, target)
    return str(target)


use_writable_cache_copy()

# (depth, reduced) -> its loop: the full image, or only the blocks' sums. Each costs about 1 s to compile, so
# there is no loop making both: where both are needed (`gray_images`), the image data inflated once is
# unfiltered twice
_DECODE = {(depth, reduce): _make_decoder(depth // 8, not reduce, reduce) for depth in (8, 16)
           for reduce in (False, True)}
REDUCTIONS = (2, 4, 8)
_NO_FULL = np.zeros((0, 0), np.float32)
_NO_SUMS = np.zeros((0, 0), np.int64)


def image_data(data: bytes, offset: int) -> bytes | None:
    """The payloads of the IDAT chunks from the one whose data starts at `offset`, joined; None unless they
    run one after another to an IEND chunk, each whole inside `data`."""
    parts = []
    pos = offset - 8
    view = memoryview(data)
    while pos + 8 <= len(data):
        length, kind = _CHUNK.unpack_from(data, pos)
        if kind == b"IEND":
            return b"".join(parts) if parts else None
        if kind != b"IDAT" or pos + 12 + length > len(data):
            return None
        parts.append(view[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return None


def gray_image(data: bytes, offset: int, width: int, height: int, depth: int, reduction: int = 1
               ) -> np.ndarray | None:
    """A non-interlaced grayscale PNG, whose first IDAT's data starts at `offset`, as float32 HxW in [0, 1]:
    each level over 255 or 65535 (the bit depth's), exactly `read_image`'s quotients; reduced by `reduction`
    as `gray_images` says. None where anything is not as expected (module docstring)."""
    images = gray_images(data, offset, width, height, depth, (reduction,))
    return None if images is None else images[0]


def gray_images(data: bytes, offset: int, width: int, height: int, depth: int, reductions: tuple[int, ...]
                ) -> list[np.ndarray] | None:
    """The image once for each of `reductions`, from one inflate: 1, the full image; 2, 4 or 8, each block of
    that many pixels a side (the last row and column of blocks as many as there are: ceil(H / reduction) x
    ceil(W / reduction)), its mean level over the depth's maximum: the block's sum and the divisor are exact
    in float32, so each value is their quotient correctly rounded. None where anything is not as expected
    (module docstring)."""
    for reduction in reductions:
        if reduction != 1 and reduction not in REDUCTIONS:
            raise ValueError(f"a PNG reduces by {REDUCTIONS}, not {reduction}")
    if depth not in (8, 16) or width < 1 or height < 1:
        return None
    compressed = image_data(data, offset)
    if compressed is None:
        return None
    bpp = depth // 8
    row = 1 + width * bpp
    inflater = isal_zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, height * row)  # at most what the rows need
    except isal_zlib.error:
        return None
    if len(raw) != height * row or not inflater.eof or inflater.unused_data:
        return None  # short, longer than the image, or its checksum missing or wrong
    rows = np.frombuffer(raw, np.uint8).reshape(height, row)
    images: dict[int, np.ndarray] = {}
    for reduction in dict.fromkeys(reductions):  # each once, in order
        reduce = reduction != 1
        image = _NO_FULL if reduce else np.empty((height, width), np.float32)
        sums = np.zeros((-(-height // reduction), -(-width // reduction)), np.int64) if reduce else _NO_SUMS
        if not _DECODE[depth, reduce](rows, image, sums, LEVELS[depth], reduction.bit_length() - 1):
            return None
        images[reduction] = sums.astype(np.float32) / block_divisors(height, width, reduction, depth) if reduce \
            else image
    return [images[reduction] for reduction in reductions]


def block_divisors(height: int, width: int, reduction: int, depth: int) -> np.ndarray:
    """Each block's pixel count times the depth's largest level, float32 (exact: at most 64 x 65535)."""
    def counts(n: int) -> np.ndarray:
        return np.minimum(reduction, n - reduction * np.arange(-(-n // reduction)))

    return (np.outer(counts(height), counts(width)) * (2**depth - 1)).astype(np.float32)
