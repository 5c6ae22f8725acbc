"""Evaluate a saved model on a dataset split with its stored operating thresholds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import create_dataset
from ml.data.batches import Batches, fits_in_memory, limit_rows
from ml.device import resolve_amp, resolve_device
from ml.evaluation.plots import save_plots
from ml.evaluation.predict import evaluate_splits
from ml.inference import LoadedModel


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str,
    data_root: str | Path,
    dataset_options: dict[str, Any] | None = None,
    split: str = "test",
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 128,
    tta: bool = False,
    max_samples: int | None = None,
) -> dict[str, Any]:
    """The report of `checkpoint` on `split` (thresholds from the checkpoint); JSON and plots in `out_dir`."""
    dev = resolve_device(device)
    loaded = LoadedModel.from_checkpoint(checkpoint, device=str(dev))
    ds = create_dataset(dataset, data_root, **(dataset_options or {}))
    if ds.pathologies != loaded.labels:
        from ml.errors import DatasetError

        raise DatasetError(
            f"dataset labels {ds.pathologies} differ from the model's {loaded.labels}; evaluate on matching data"
        )
    rows = limit_rows(ds.split(split), max_samples, 0)
    batches = Batches(rows, loaded.preprocess, batch_size=batch_size, shuffle=False,
                      in_memory=fits_in_memory(len(rows), loaded.data_config.input_size))
    report = evaluate_splits(loaded.model, loaded.preprocess, ds, {split: batches}, dev, resolve_amp("auto", dev),
                             "f1", tta, thresholds=np.asarray(loaded.thresholds))
    report.update(checkpoint=str(checkpoint), dataset=dataset, split=split, pathologies=ds.pathologies)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        save_plots(out, [], report, ds.pathologies)
    return report
