"""A model over the batches of a dataset split: probabilities and labels per row, and reports per split with
operating thresholds chosen on validation. Used by training (validation each epoch, the final report) and by
`evaluate_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ml.data.base import CXRDataset, Task
from ml.data.batches import Batches
from ml.device import autocast
from ml.errors import DatasetError
from ml.evaluation.metrics import PredictionAccumulator, choose_thresholds, classification_report
from ml.models import CXRModel
from ml.transforms import Preprocess
from ml.tta import averaged_logits, tta_mode

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # logits, labels -> mean loss


@torch.no_grad()
def predict_batches(
    model: CXRModel,
    batches: Batches,
    preprocess: Preprocess,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    task: Task,
    tta: bool | str = False,
    loss_fn: LossFn | None = None,
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Probabilities and labels for every row, in order; mean loss when `loss_fn` is given. `tta`: a mode of
    `ml.tta` (or a bool: True is the mirror), the logits averaged over its views."""
    mode = tta_mode(tta)
    model.eval()
    acc = PredictionAccumulator(task)
    total_loss, seen = 0.0, 0
    for images, labels in batches.epoch():
        x = preprocess.finish(images.to(device))
        with autocast(device, amp_dtype):
            logits = averaged_logits(model, x, mode)
        if loss_fn is not None:
            total_loss += float(loss_fn(logits, labels.to(device))) * len(images)
            seen += len(images)
        acc.update(logits, labels)
    probs, labels = acc.compute()
    return probs, labels, (total_loss / seen if seen else None)


def evaluate_splits(
    model: CXRModel,
    preprocess: Preprocess,
    dataset: CXRDataset,
    batches: dict[str, Batches | None],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    threshold_policy: str,
    tta: bool | str,
    thresholds: np.ndarray | None = None,
    target_sensitivity: float = 0.95,
    calibrate: bool = True,
) -> dict[str, Any]:
    """Reports per split; thresholds chosen on 'val' unless given. Choosing them on 'val' first fits
    temperatures there (`calibrate`), so thresholds, reports and the stored model are all on calibrated
    outputs; the report's `calibration` has the temperatures and each split's ECE and Brier before and after."""
    outputs = {name: predict_batches(model, b, preprocess, device, amp_dtype, dataset.task, tta)
               for name, b in batches.items() if b is not None}
    calibration = None
    if thresholds is None:
        if "val" not in outputs:
            raise DatasetError("choosing thresholds needs a validation split")
        if calibrate:
            from ml.evaluation.calibration import can_shift

            outputs, calibration = calibrate_outputs(outputs, dataset.task, shift=can_shift(model.head()))
        thresholds = choose_thresholds(outputs["val"][0], outputs["val"][1], threshold_policy,
                                       target_sensitivity)
    splits = {name: classification_report(probs, labels, dataset.task, dataset.pathologies, thresholds)
              for name, (probs, labels, _) in outputs.items()}
    report = {"thresholds": [float(t) for t in thresholds], "threshold_policy": threshold_policy, "tta": tta_mode(tta),
              "splits": splits}
    if calibration is not None:
        report["calibration"] = calibration
    return report


Outputs = dict[str, tuple[np.ndarray, np.ndarray, float | None]]


def calibrate_outputs(outputs: Outputs, task: Task, shift: bool = False) -> tuple[Outputs, dict[str, Any]]:
    """Temperatures (and with `shift`, biases: Platt scaling) fitted on outputs['val'], every split's
    probabilities scaled by them, and the calibration record: method, temperatures, biases and each split's
    ECE/Brier before and after with reliability tables."""
    from ml.evaluation.calibration import calibration_summary, fit_temperatures, scaled

    shift = shift and task is not Task.MULTICLASS
    temps, biases = fit_temperatures(outputs["val"][0], outputs["val"][1], task, shift=shift)
    after = {name: (scaled(probs, temps, task, biases), labels, loss)
             for name, (probs, labels, loss) in outputs.items()}
    record = {"method": "platt" if shift else "temperature", "fitted_on": "val",
              "temperatures": [float(t) for t in temps], "biases": [float(b) for b in biases],
              "splits": {name: calibration_summary(outputs[name][0], after[name][0], outputs[name][1], task)
                         for name in outputs}}
    return after, record


def calibration_for_checkpoint(record: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint keeps of a calibration record: temperatures and each split's four figures."""
    keys = ("ece_before", "ece_after", "brier_before", "brier_after", "n")
    return {"method": record["method"], "fitted_on": record["fitted_on"], "temperatures": record["temperatures"],
            "biases": record["biases"], "splits": {s: {k: v[k] for k in keys} for s, v in record["splits"].items()}}
