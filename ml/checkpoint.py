"""Self-describing checkpoints.

A checkpoint is a dict of plain values and tensors only, so it loads with `weights_only=True`: the
model name and kwargs, ordered labels, task, data config, training config, thresholds, metrics and
epoch, the model weights, and for resumable checkpoints the optimiser, scheduler, scaler and RNG
states. (Follows the idea of timm's checkpoint saver: a checkpoint says how to rebuild its model.)
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ml.config import DataConfig
from ml.errors import ModelError
from ml.models import CXRModel, create_model

FORMAT = "cxr-checkpoint/1"
REQUIRED_KEYS = ("format", "model_name", "model_kwargs", "labels", "task", "data_config", "state_dict")


def plain(value: Any) -> Any:
    """Nested dicts/lists of numpy scalars and arrays as plain Python values (safe for weights_only)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, torch.Tensor):  # numpy scalars and arrays
        return value.tolist()
    return value


def build_checkpoint(
    model: CXRModel,
    *,
    model_kwargs: dict[str, Any],
    labels: list[str],
    task: str,
    data_config: DataConfig,
    train_config: dict[str, Any] | None = None,
    thresholds: list[float] | None = None,
    metrics: dict[str, Any] | None = None,
    epoch: int = 0,
    best_metric: float | None = None,
    training_state: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to rebuild, serve, and (with `training_state`) resume a model."""
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "model_name": model.cfg.name,
        "model_kwargs": dict(model_kwargs),
        "num_classes": model.cfg.num_classes,
        "in_chans": model.cfg.in_chans,
        "labels": list(labels),
        "task": str(task),
        "data_config": data_config.model_dump(mode="json"),
        "train_config": plain(train_config or {}),
        "thresholds": [float(t) for t in thresholds] if thresholds is not None else None,
        "metrics": plain(metrics or {}),
        "epoch": int(epoch),
        "epochs_from": 1,  # `epoch` counts from 1 (checkpoints without this key counted from 0)
        "best_metric": plain(best_metric),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if calibration is not None:  # {"method": "temperature", "temperatures": [...], per-split figures}
        ckpt["calibration"] = plain(calibration)
    if training_state is not None:
        ckpt["training_state"] = training_state
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # readable by the API and workers running as other users
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(source: str | Path | bytes, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True` and check the keys; `ModelError` says what is wrong."""
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        ckpt = torch.load(handle, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint not found: {source}") from None
    except Exception as exc:  # torch raises many kinds for corrupt or unsafe files
        where = "bytes" if isinstance(source, bytes) else str(source)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        if "Weights only load failed" in str(exc):
            reason = "it holds objects other than tensors and plain values (refused by weights_only loading)"
        raise ModelError(f"cannot load checkpoint {where}: {type(exc).__name__}: {reason}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"not a {FORMAT} checkpoint (format: {getattr(ckpt, 'get', lambda _: None)('format')})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ModelError(f"checkpoint lacks {', '.join(missing)}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], *, calibrated: bool = True) -> CXRModel:
    """Rebuild the model a checkpoint describes and load its weights (no pretrained download); with the
    checkpoint's calibration temperatures folded into its last layer unless `calibrated` is false."""
    model = create_model(
        ckpt["model_name"],
        num_classes=ckpt.get("num_classes", len(ckpt["labels"])),
        in_chans=ckpt.get("in_chans"),
        **ckpt["model_kwargs"],
    )
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ModelError(f"checkpoint weights do not fit model '{ckpt['model_name']}': {exc}") from None
    temperatures = (ckpt.get("calibration") or {}).get("temperatures")
    if calibrated and temperatures:
        from ml.evaluation.calibration import fold_temperatures

        fold_temperatures(model, model.head(), temperatures)
    return model.eval()


def checkpoint_epoch(ckpt: dict[str, Any]) -> int | None:
    """The epoch a checkpoint was taken after, counting from 1 (older checkpoints counted from 0)."""
    epoch = ckpt.get("epoch")
    if epoch is None:
        return None
    return int(epoch) if ckpt.get("epochs_from") == 1 else int(epoch) + 1


def checkpoint_summary(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The plain metadata a registry records for a model version (no tensors)."""
    return {
        "architecture": ckpt["model_name"],
        "labels": list(ckpt["labels"]),
        "task": ckpt["task"],
        "data_config": dict(ckpt["data_config"]),
        "thresholds": list(ckpt.get("thresholds") or [0.5] * len(ckpt["labels"])),
        "metrics": dict(ckpt.get("metrics") or {}),
        "epoch": checkpoint_epoch(ckpt),
    }
