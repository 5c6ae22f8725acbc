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
    tta: bool | str | None = None,
    max_samples: int | None = None,
) -> dict[str, Any]:
    """The report of `checkpoint` on `split` (thresholds from the checkpoint, and its test-time views unless
    `tta` names others); JSON and plots in `out_dir`."""
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
                             "f1", loaded.tta if tta is None else tta, thresholds=np.asarray(loaded.thresholds))
    report.update(checkpoint=str(checkpoint), dataset=dataset, split=split, pathologies=ds.pathologies)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        save_plots(out, [], report, ds.pathologies)
    return report


def calibrate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str,
    data_root: str | Path,
    dataset_options: dict[str, Any] | None = None,
    out: str | Path | None = None,
    report_dir: str | Path | None = None,
    threshold_policy: str | None = None,
    device: str = "auto",
    batch_size: int = 128,
    val_only: bool = False,
    tta: bool | str | None = None,
) -> dict[str, Any]:
    """Calibrate a trained checkpoint without retraining: temperatures fitted on the dataset's 'val' split
    (from the raw outputs, whatever calibration it had), thresholds chosen again on the calibrated
    validation outputs by its own policy and target (or `threshold_policy`), ECE/Brier before and after on
    'val' and 'test' (where the dataset has one); written to `out` (default: in place, atomically) with the
    metrics of each split updated; `val_only` leaves the test split unread (a candidate not chosen yet). Returns
    the evaluation report with its `calibration` record; JSON and plots (reliability diagrams) in
    `report_dir`. `tta`: the views to average (`ml.tta`), stored in the checkpoint so that serving answers
    with what was calibrated; default the checkpoint's own."""
    from ml.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from ml.config import DataConfig
    from ml.data.base import Task
    from ml.evaluation.metrics import choose_thresholds, classification_report
    from ml.evaluation.predict import calibrate_outputs, calibration_for_checkpoint, predict_batches
    from ml.transforms import Preprocess
    from ml.tta import checkpoint_tta, tta_mode

    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, calibrated=False).to(dev)
    preprocess = Preprocess(DataConfig.model_validate(ckpt["data_config"]))
    ds = create_dataset(dataset, data_root, **(dataset_options or {}))
    if ds.pathologies != list(ckpt["labels"]):
        from ml.errors import DatasetError

        raise DatasetError(f"dataset labels {ds.pathologies} differ from the model's {ckpt['labels']}")
    task = Task(ckpt["task"])
    mode = checkpoint_tta(ckpt) if tta is None else tta_mode(tta)
    outputs = {}
    # a recipe whose test is another collection (the Kermany models' official test) has no 'test' split here
    for split in ("val", *(["test"] if "test" in ds.splits() and not val_only else [])):
        rows = ds.split(split)
        batches = Batches(rows, preprocess, batch_size=batch_size, shuffle=False,
                          in_memory=fits_in_memory(len(rows), preprocess.cfg.input_size))
        outputs[split] = predict_batches(model, batches, preprocess, dev, resolve_amp("auto", dev), task, mode)
    from ml.evaluation.calibration import can_shift

    calibrated, record = calibrate_outputs(outputs, task, shift=can_shift(model.head()))
    train_params = (ckpt.get("train_config") or {}).get("params") or {}
    policy = threshold_policy or train_params.get("threshold_policy") or "f1"
    # the policy's own setting from training (a 'sensitivity' policy's target), unless another policy is asked
    target = train_params.get("threshold_sensitivity") if policy == train_params.get("threshold_policy") else None
    thresholds = choose_thresholds(calibrated["val"][0], calibrated["val"][1], policy,
                                   **({"target_sensitivity": target} if target is not None else {}))
    splits = {s: classification_report(p, y, task, ds.pathologies, thresholds) for s, (p, y, _) in calibrated.items()}
    stored = calibration_for_checkpoint(record)
    metrics = dict(ckpt.get("metrics") or {})
    for split, rep in splits.items():
        keys = ("n", "mean_auroc", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "accuracy",
                "accuracy_at_0.5")
        figures = {k: rep[k] for k in keys if k in rep}
        figures["auroc"] = {name: c["auroc"] for name, c in rep["per_class"].items()}
        cal = {k: v for k, v in stored["splits"][split].items() if k != "n"}
        metrics[split] = {**(metrics.get(split) or {}), **figures, **cal}
    shown = "test" if "test" in stored["splits"] else "val"
    metrics["calibration"] = {"method": stored["method"], **stored["splits"][shown]}  # GET /models `quality`
    ckpt.update(thresholds=[float(t) for t in thresholds], calibration=stored, metrics=metrics, tta=mode)
    save_checkpoint(ckpt, out or checkpoint)
    report = {"thresholds": [float(t) for t in thresholds], "threshold_policy": policy, "tta": mode, "splits": splits,
              "calibration": record, "checkpoint": str(out or checkpoint), "dataset": dataset}
    if report_dir is not None:
        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "calibration.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        save_plots(folder, [], report, ds.pathologies)
    return report
