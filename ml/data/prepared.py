"""The prepared dataset cache: every image of a split decoded and resized once, kept as uint8 on disk.

Decoding a 1024 px PNG costs 10-20 ms of one core, so an NIH epoch that decodes every file again costs tens
of core-minutes. The first use of a (dataset, source fingerprint, input size, preprocessing) writes the
resized images, quantised to uint8 (`to_uint8`), into one `(N, S, S)` `images.npy` plus a small
`index.json` under `<cache root>/<dataset>-<key>/`; later epochs and later jobs memory-map it. A batch is
then an index selection from the map: no decoding, no resizing.

The key hashes what decides the pixels: the dataset name, the source's fingerprint (each file's path, size
and modification time in order; the array's bytes for an in-memory set), the input size and the resize
settings. A changed source (a file added, removed, rewritten or touched) gives a new key, so a stale
cache is never read; old entries stay until a person removes them.

A cache is written to a temporary folder and renamed into place when complete, so a reader sees a whole
cache or none, and two jobs preparing the same split at once both succeed (the second rename loses and
uses the first's).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ml.config import DataConfig
from ml.data.base import ArrayImages, FileImages, ImageSource
from ml.errors import DatasetError
from ml.transforms import Preprocess

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX = "index.json"
IMAGES = "images.npy"
CHUNK = 256  # most images per task of a parallel build

Progress = Callable[[int, int], None]


def to_uint8(resized: torch.Tensor) -> np.ndarray:
    """A resized (1, S, S) image in [0, 1] as (S, S) uint8, rounded to nearest (error at most 1/510)."""
    # NumPy, one thread: torch's small element-wise ops pay for waking its thread pool on every call
    scaled = np.rint(resized[0].numpy() * np.float32(255.0))
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def fingerprint(images: ImageSource) -> str:
    """What identifies the source's pixels: files by path, size and mtime (in order); arrays by content."""
    h = hashlib.sha256()
    if isinstance(images, FileImages):
        for path in images.paths:
            try:
                st = path.stat()
            except OSError as exc:
                raise DatasetError(f"image file not readable: {path} ({exc.strerror})") from None
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    elif isinstance(images, ArrayImages):
        h.update(f"{images.array.dtype}{images.array.shape}".encode())
        h.update(np.ascontiguousarray(images.array).data)
    else:
        raise DatasetError(f"cannot fingerprint images of type {type(images).__name__}")
    return h.hexdigest()


def preprocessing(cfg: DataConfig) -> dict[str, object]:
    """The part of a data config that decides the stored pixels (normalisation comes after the cache)."""
    return {"input_size": cfg.input_size, "resize_mode": cfg.resize_mode, "crop_pct": cfg.crop_pct,
            "resize": "bilinear-antialias", "dtype": "uint8"}


def cache_key(dataset: str, source: str, cfg: DataConfig) -> str:
    text = json.dumps({"v": FORMAT_VERSION, "dataset": dataset, "source": source, "pre": preprocessing(cfg)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class PreparedImages:
    """A complete cache: `array` is the (N, S, S) uint8 memory map."""

    folder: Path
    array: np.ndarray
    index: dict[str, object]
    built: bool  # written by this call (False: reused)

    def __len__(self) -> int:
        return len(self.array)

    def tensor(self) -> torch.Tensor:
        """The map as a uint8 tensor sharing its pages (copy-on-write: nothing is written back)."""
        return torch.from_numpy(self.array)


def open_prepared(folder: Path) -> PreparedImages | None:
    index_path, images_path = folder / INDEX, folder / IMAGES
    if not (index_path.is_file() and images_path.is_file()):
        return None
    index = json.loads(index_path.read_text())
    array = np.load(images_path, mmap_mode="c")
    if not index.get("complete") or array.shape[0] != index.get("n"):
        return None
    return PreparedImages(folder, array, index, built=False)


def prepare(
    name: str,
    images: ImageSource,
    cfg: DataConfig,
    root: str | Path,
    *,
    workers: int = 0,
    progress: Progress | None = None,
) -> PreparedImages:
    """The prepared cache of `images` under `root`: reused when it exists, else built (by `workers` processes;
    0: in this one) and then reused."""
    if len(images) == 0:
        raise DatasetError(f"{name}: nothing to prepare (no images)")
    source = fingerprint(images)
    key = cache_key(name, source, cfg)
    root = Path(root)
    folder = root / f"{_safe(name)}-{key}"
    found = open_prepared(folder)
    if found is not None:
        log.info("prepared cache %s reused (%d images)", folder, len(found))
        return found
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        started = time.perf_counter()
        n, size = len(images), cfg.input_size
        out = np.lib.format.open_memmap(tmp / IMAGES, mode="w+", dtype=np.uint8, shape=(n, size, size))
        del out  # the builders open it themselves
        _build(images, cfg, tmp / IMAGES, workers, progress)
        index = {"format": FORMAT_VERSION, "dataset": name, "key": key, "source_fingerprint": source, "n": n,
                 "shape": [n, size, size], "dtype": "uint8", "preprocessing": preprocessing(cfg),
                 "source": "files" if isinstance(images, FileImages) else "array",
                 "build_s": round(time.perf_counter() - started, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                              time.gmtime()),
                 "complete": True}
        (tmp / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:  # another builder finished first: use its cache
            if open_prepared(folder) is None:
                raise
            log.info("prepared cache %s was written concurrently; using it", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prepared = open_prepared(folder)
    assert prepared is not None
    prepared.built = True
    log.info("prepared cache %s written: %d images in %.1f s", folder, len(prepared), prepared.index["build_s"])
    return prepared


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "dataset"


def _build(images: ImageSource, cfg: DataConfig, path: Path, workers: int, progress: Progress | None) -> None:
    n = len(images)
    step = min(CHUNK, max(16, -(-n // (4 * max(workers, 1)))))  # a few chunks per process, for balance
    chunks = [(start, min(start + step, n)) for start in range(0, n, step)]
    done = 0
    if workers <= 1 or len(chunks) == 1 or not isinstance(images, FileImages):
        for start, stop in chunks:
            done += _write_chunk(images, cfg, path, start, stop, start)
            if progress:
                progress(done, n)
        return
    # spawned, not forked: the caller may be a worker process that has initialised CUDA
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(_write_chunk, FileImages(images.paths[a:b]), cfg, path, a, b, 0) for a, b in chunks]
        for future in futures:
            done += future.result()
            if progress:
                progress(done, n)


def _one_thread() -> None:
    torch.set_num_threads(1)  # the pool's processes share the cores among them


def _write_chunk(images: ImageSource, cfg: DataConfig, path: Path, start: int, stop: int, first: int) -> int:
    """Decode, resize and store rows [start, stop); row i is image `i - start + first` of `images`."""
    preprocess = Preprocess(cfg)
    out = np.load(path, mmap_mode="r+")
    for i in range(start, stop):
        out[i] = to_uint8(preprocess.resize(images.load(i - start + first)))
    out.flush()
    return stop - start
