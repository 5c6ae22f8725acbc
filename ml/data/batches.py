"""Feeding images to the training loop.

Every image is resized once by `Preprocess.resize` into a (1, S, S) tensor in [0, 1]. When the
resized split fits in memory (the usual case here: MedMNIST, a few thousand 224 px images), it is
decoded once into one float16 tensor and batches are index selections from it, which costs almost
nothing beside the model. With a prepared cache (`ml.data.prepared`) the resized images are a uint8
memory map on disk and batches are index selections from it, whatever the split's size. Otherwise a
`DataLoader` with workers decodes on the fly. Augmentation and normalisation happen later, on the training
device, on whole batches.

Under data parallelism (`shard=(rank, world)`) every rank draws the same global order from the same
generator and takes its stride of each global batch (the union over ranks is exactly the one-process
batch: a distributed sampler that keeps the global batch); without shuffling, each rank takes a
contiguous block of rows, so gathering the ranks' outputs in rank order gives the rows in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ml.data.base import CXRDataset
from ml.transforms import Preprocess

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


class _Resized(Dataset):
    def __init__(self, ds: CXRDataset, preprocess: Preprocess) -> None:
        self.ds, self.preprocess = ds, preprocess

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Batch:
        image, label = self.ds[i]
        return self.preprocess.resize(image), torch.from_numpy(label)


class _EpochBatches(Sampler[list[int]]):
    """Yields the batches set for the current epoch (set in the main process, so persistent workers see them)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Batches:
    """An epoch-by-epoch source of (images (B, 1, S, S) in [0, 1], labels (B, L)) batches."""

    def __init__(
        self,
        ds: CXRDataset,
        preprocess: Preprocess,
        *,
        batch_size: int,
        shuffle: bool,
        drop_last: bool = False,
        in_memory: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        progress: Callable[[int, int], None] | None = None,
        prepared: torch.Tensor | None = None,
        shard: tuple[int, int] = (0, 1),
        sample_weights: np.ndarray | None = None,
    ) -> None:
        self.ds, self.batch_size, self.shuffle = ds, batch_size, shuffle
        # With weights (and shuffling) each epoch draws len(ds) rows with replacement in proportion to them:
        # a weighted sampler, e.g. to mix the members of a merged dataset by chosen weights.
        self.sample_weights = (None if sample_weights is None
                               else torch.tensor(np.asarray(sample_weights, dtype=np.float64)))
        # A last batch of one breaks BatchNorm in training; drop it only when others exist.
        self.drop_last = drop_last and len(ds) > batch_size
        self.rank, self.world = shard
        self.labels = torch.from_numpy(ds.labels)
        self.images: torch.Tensor | None = None
        self.prepared = prepared  # (N, S, S) uint8, e.g. a memory-mapped prepared cache
        self._resized = _Resized(ds, preprocess)
        self._batches = _EpochBatches()
        self._loader: DataLoader | None = None
        if prepared is not None:
            if len(prepared) != len(ds):
                raise ValueError(f"prepared images hold {len(prepared)} rows for {len(ds)} dataset rows")
        elif in_memory:
            self.images = self._decode_all(progress)
        else:
            self._loader = DataLoader(
                self._resized,
                batch_sampler=self._batches,
                num_workers=num_workers,
                pin_memory=pin_memory,
                persistent_workers=persistent_workers and num_workers > 0,
                prefetch_factor=4 if num_workers else None,
            )

    def _decode_all(self, progress: Callable[[int, int], None] | None) -> torch.Tensor:
        n = len(self._resized)
        first, _ = self._resized[0]
        out = torch.empty((n, *first.shape), dtype=torch.float16)
        out[0] = first
        for i in range(1, n):
            out[i] = self._resized[i][0]
            if progress is not None and (i % 256 == 0 or i == n - 1):
                progress(i + 1, n)
        return out

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank when sharded)."""
        n = len(self._rows()) if not self.shuffle else len(self.ds)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _rows(self) -> torch.Tensor:
        """This rank's rows when not shuffling: a contiguous block."""
        n, world = len(self.ds), self.world
        bounds = [n * r // world for r in range(world + 1)]
        return torch.arange(bounds[self.rank], bounds[self.rank + 1])

    def _epoch_batches(self, generator: torch.Generator | None) -> list[torch.Tensor]:
        if not self.shuffle:
            rows = self._rows()
            return [rows[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        n = len(self.ds)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, n, replacement=True, generator=generator)
        else:
            order = torch.randperm(n, generator=generator)
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        return [idx[self.rank::self.world] for idx in batches]

    def epoch(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """The batches of one epoch; the order comes from `generator` when shuffling."""
        batches = self._epoch_batches(generator)
        if self._loader is not None:
            self._batches.batches = [idx.tolist() for idx in batches]
            yield from self._loader
            return
        for idx in batches:
            if self.prepared is not None:
                images = self.prepared[idx].unsqueeze(1).float().div_(255.0)
            else:
                assert self.images is not None
                images = self.images.index_select(0, idx).float()
            yield images, self.labels.index_select(0, idx)


def limit_rows(ds: CXRDataset, limit: int | None, seed: int) -> CXRDataset:
    """At most `limit` rows, chosen at random but reproducibly (for quick runs)."""
    if limit is None or limit >= len(ds):
        return ds
    rng = np.random.default_rng(seed)
    return ds.subset(np.sort(rng.choice(len(ds), size=limit, replace=False)))


def fits_in_memory(n: int, input_size: int, budget_bytes: int = 6 * 2**30) -> bool:
    return n * input_size * input_size * 2 <= budget_bytes
