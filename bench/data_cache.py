"""Images per second delivered to the training loop: from the raw files, and from the prepared cache.

    python -m bench.data_cache [--images 256] [--size 224] [--batch 32] [--workers CORES]

The inputs are full-size NIH ChestX-ray14 radiographs: the five 1024 x 1024 images of
`shared/data/nih-chestxray14/unlabelled_fullres_openjphpy` (else the repository's one 1024 px sample),
written as 8-bit PNGs the way NIH ships them, and repeated under distinct names to `--images` files.

Both paths deliver what `fit` consumes: (B, 1, S, S) batches in [0, 1] with the training augmentation
(`BatchAugment`, default settings) applied, from a `DataLoader` with `--workers` processes (default: as many
as cores), each with one torch thread. Raw: every image decoded (`read_image`) and resized (`Preprocess`)
for every batch, as every epoch does without a cache. Cache: the split prepared once by `ml.data.prepared`
(its build time is reported apart), batches read from the memory map. Also measured with no workers (the
main process, one thread): the per-core rate. Each figure is over whole passes after a first warm-up pass. Targets (issue 19): cache >= 10x raw, and a per-core cache
rate that 16 cores turn into 2,000 images/s (125 per core). On a GPU the augmentation runs on the device,
so the CPU figures here are a floor. Writes bench/results/data_cache.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.common import REPO_ROOT, machine, write_result
from ml.config import AugmentConfig, DataConfig
from ml.data.base import FileImages
from ml.data.prepared import prepare
from ml.imaging import read_image
from ml.transforms import BatchAugment, Preprocess

SHARED_NIH = REPO_ROOT.parent / "shared" / "data" / "nih-chestxray14" / "unlabelled_fullres_openjphpy" / \
    "nih_cxr_5x1024_openjphpy_dataset1.npz"
SHARED_NIH_ALT = Path("/work/shared/data/nih-chestxray14/unlabelled_fullres_openjphpy/"
                      "nih_cxr_5x1024_openjphpy_dataset1.npz")
SAMPLE = REPO_ROOT / "data" / "samples" / "nih_cxr_1024.png"
TARGET_RATIO = 10.0
TARGET_PER_CORE = 2000 / 16


def source_images() -> tuple[list[np.ndarray], str]:
    for path in (SHARED_NIH, SHARED_NIH_ALT):
        if path.is_file():
            with np.load(path, allow_pickle=False) as npz:
                return [npz[k] for k in sorted(npz.files)], str(path)
    with Image.open(SAMPLE) as im:
        return [np.asarray(im.convert("L"))], str(SAMPLE)


def write_files(folder: Path, n: int) -> tuple[list[Path], str]:
    """`n` PNG files cycling through the full-size radiographs."""
    images, origin = source_images()
    originals = []
    for k, image in enumerate(images):
        path = folder / f"original_{k}.png"
        Image.fromarray(image).save(path)
        originals.append(path)
    paths = []
    for i in range(n):
        path = folder / f"{i:06d}.png"
        shutil.copyfile(originals[i % len(originals)], path)
        paths.append(path)
    return paths, origin


class _AugmentedBatches(Dataset):
    """Item b: batch b decoded (raw) or read from the map (cache), then augmented as `fit` does."""

    def __init__(self, batches: list[list[int]], cfg: DataConfig, *, paths: list[Path] | None = None,
                 cache: Path | None = None) -> None:
        self.batches, self.cfg, self.paths, self.cache = batches, cfg, paths, cache
        self.augment = BatchAugment(AugmentConfig())
        self.preprocess = Preprocess(cfg)
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> torch.Tensor:
        idx = self.batches[b]
        if self.cache is not None:
            if self._array is None:  # opened in the worker process
                self._array = np.load(self.cache, mmap_mode="r")
            images = torch.from_numpy(self._array[idx]).unsqueeze(1).float().div_(255.0)
        else:
            assert self.paths is not None
            images = torch.stack([self.preprocess.resize(read_image(self.paths[i])) for i in idx])
        return self.augment(images, torch.Generator().manual_seed(b))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def delivered_per_s(dataset: _AugmentedBatches, workers: int, min_seconds: float) -> dict[str, float]:
    """Images/s the loop receives over whole passes (at least one, until `min_seconds` have gone by), after a
    first pass that starts the workers and warms the page cache."""
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                        worker_init_fn=_one_thread if workers else None, prefetch_factor=4 if workers else None,
                        persistent_workers=workers > 0)
    threads = torch.get_num_threads()
    if not workers:
        torch.set_num_threads(1)
    try:
        for _ in loader:
            pass
        images, passes, started = 0, 0, time.perf_counter()
        while True:
            for batch in loader:
                images += len(batch)
            passes += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
    finally:
        torch.set_num_threads(threads)
    return {"images_per_s": images / elapsed, "images": images, "seconds": elapsed, "passes": passes}


def run(*, images: int = 256, size: int = 224, batch: int = 32, workers: int | None = None,
        min_seconds: float = 3.0) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    workers = cores if workers is None else workers
    cfg = DataConfig(input_size=size)
    order = np.random.default_rng(0).permutation(images)
    batches = [order[b:b + batch].tolist() for b in range(0, images - batch + 1, batch)]
    with tempfile.TemporaryDirectory() as tmp:
        paths, origin = write_files(Path(tmp), images)
        started = time.perf_counter()
        prepared = prepare("bench-nih", FileImages(paths), cfg, Path(tmp) / "cache", workers=workers)
        build_s = time.perf_counter() - started
        cache_file = prepared.folder / "images.npy"
        rows: dict[str, Any] = {}
        for label, n_workers in ((f"{workers}_workers", workers), ("main_process", 0)):
            raw = delivered_per_s(_AugmentedBatches(batches, cfg, paths=paths), n_workers, 0.0)
            cached = delivered_per_s(_AugmentedBatches(batches, cfg, cache=cache_file), n_workers, min_seconds)
            rows[label] = {"workers": n_workers, "raw": raw, "cache": cached,
                           "cache_over_raw": cached["images_per_s"] / raw["images_per_s"]}
    per_core = rows["main_process"]["cache"]["images_per_s"]
    ratio = rows[f"{workers}_workers"]["cache_over_raw"]
    return {"source": origin, "source_side": 1024, "files": images, "input_size": size, "batch": batch,
            "cores": cores, "workers": workers, "augmentation": AugmentConfig().model_dump(),
            "cache_build_s": build_s, "cache_build_images_per_s": images / build_s, "runs": rows,
            "per_core_cache_images_per_s": per_core, "cores_for_2000_per_s": 2000 / per_core,
            "targets": {"cache_over_raw": {"target": f">= {TARGET_RATIO:.0f}x", "measured": ratio,
                                           "met": ratio >= TARGET_RATIO},
                        "per_core_cache": {"target": f">= {TARGET_PER_CORE:.0f} img/s (2,000 on 16 cores)",
                                           "measured": per_core, "met": per_core >= TARGET_PER_CORE}}}


def print_table(r: dict[str, Any]) -> None:
    print(f"{r['files']} files from {r['source']} ({r['source_side']} px PNG) -> {r['input_size']} px, batch "
          f"{r['batch']}, training augmentation; {r['cores']} cores")
    print(f"cache build: {r['cache_build_s']:.1f} s ({r['cache_build_images_per_s']:.0f} img/s, {r['workers']} "
          "processes)")
    print(f"{'loader':<14}{'raw img/s':>12}{'cache img/s':>13}{'cache/raw':>11}")
    for label, row in r["runs"].items():
        print(f"{label:<14}{row['raw']['images_per_s']:>12.1f}{row['cache']['images_per_s']:>13.1f}"
              f"{row['cache_over_raw']:>11.1f}")
    for name, t in r["targets"].items():
        print(f"{name}: {t['measured']:.1f} (target {t['target']}): {'met' if t['met'] else 'NOT met'}")
    print(f"cores for 2,000 img/s from the cache at this per-core rate: {r['cores_for_2000_per_s']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="files (cycling through the full-size images)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, help="loader processes (default: cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="least time measured from the cache")
    args = parser.parse_args(argv)
    result = run(images=args.images, size=args.size, batch=args.batch, workers=args.workers,
                 min_seconds=args.seconds)
    print(f"machine: {machine()}")
    print_table(result)
    print(f"raw: {write_result('data_cache', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
