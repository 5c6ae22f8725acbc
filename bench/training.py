"""Benchmark 6, training throughput: images/second of `fit` against a bare PyTorch loop with the same
model, batch, optimiser and in-memory data (augmentation off in both), and `fit` again with the
DataLoader path (images decoded by workers each epoch) to show the loader is not the bottleneck.

    python -m bench.training
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import torch

from bench.common import REPO_ROOT, write_result
from ml.config import TrainConfig
from ml.data import create_dataset
from ml.models import create_model
from ml.training.losses import masked_bce
from ml.training.loop import fit
from ml.transforms import Preprocess, resolve_data_config

DATA = REPO_ROOT / "data" / "pneumoniamnist"
CASES = [  # (model, batch size, input size, train rows, epochs)
    ("simple_cnn", 128, 28, 4708, 2),
    ("densenet121", 16, 96, 256, 1),
]


def _params(batch: int, size: int, rows: int, epochs: int, **extra: Any) -> dict[str, Any]:
    return {"epochs": epochs, "batch_size": batch, "input_size": size, "max_train_samples": rows,
            "max_eval_samples": 64, "augment": {"enabled": False}, "scheduler": "none", "seed": 0,
            "optimizer": "adamw", "lr": 1e-3, **extra}


def fit_images_per_s(model: str, batch: int, size: int, rows: int, epochs: int, **extra: Any) -> float:
    config = TrainConfig.parse({"model": model, "dataset": "pneumoniamnist", "data_root": str(DATA),
                                "params": _params(batch, size, rows, epochs, **extra)})
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(config, tmp, resume=False)
    return max(h["train"]["images_per_s"] for h in result.history)  # best epoch: the first warms caches


def bare_images_per_s(model_name: str, batch: int, size: int, rows: int, epochs: int) -> float:
    """The loop anyone would write: tensors in memory, forward, BCE, backward, AdamW step."""
    torch.manual_seed(0)
    ds = create_dataset("pneumoniamnist", DATA).split("train")
    model = create_model(model_name, num_classes=1)
    pre = Preprocess(resolve_data_config(model.cfg, input_size=size))
    images = torch.stack([pre(ds[i][0]) for i in range(rows)])
    labels = torch.from_numpy(ds.labels[:rows])
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0}],
                                  lr=1e-3)
    best = 0.0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(epoch))
        started, seen = time.perf_counter(), 0
        for b in range(rows // batch):
            idx = order[b * batch:(b + 1) * batch]
            loss = masked_bce(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
        best = max(best, seen / (time.perf_counter() - started))
    return best


def run(*, quick: bool = False) -> dict[str, Any]:
    rows = []
    cases = [(m, b, s, min(n, 4 * b) if quick else n, 1 if quick else e) for m, b, s, n, e in CASES]
    for model, batch, size, n, epochs in cases:
        bare = bare_images_per_s(model, batch, size, n, epochs)
        ours = fit_images_per_s(model, batch, size, n, epochs)
        loader = fit_images_per_s(model, batch, size, n, epochs, cache_images=False, num_workers=2)
        rows.append({"model": model, "batch": batch, "input_size": size, "rows": n, "bare_images_per_s": bare,
                     "fit_images_per_s": ours, "fit_dataloader_images_per_s": loader,
                     "fit_over_bare": ours / bare, "dataloader_over_in_memory": loader / ours})
    return {"cases": rows}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'model':<14}{'batch':>6}{'size':>6}{'bare img/s':>12}{'fit img/s':>11}{'fit/bare':>10}"
          f"{'loader img/s':>14}{'loader/mem':>12}")
    for r in result["cases"]:
        print(f"{r['model']:<14}{r['batch']:>6}{r['input_size']:>6}{r['bare_images_per_s']:>12.0f}"
              f"{r['fit_images_per_s']:>11.0f}{r['fit_over_bare']:>10.2f}{r['fit_dataloader_images_per_s']:>14.0f}"
              f"{r['dataloader_over_in_memory']:>12.2f}")


def main() -> int:
    result = run()
    print_table(result)
    print(f"raw: {write_result('training', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
