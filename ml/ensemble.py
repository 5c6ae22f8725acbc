"""Join separately trained checkpoints into one `ensemble` checkpoint (`cxr ensemble`).

The members must be one architecture with the same options, labels, task and input (data config): the
ensemble feeds each the same preprocessed image and averages their logits (`ml.models.ensemble`). Each
member's raw weights are used; a member's own calibration is dropped, since the average needs its own:
run `cxr calibrate` on the joined checkpoint, which fits it on the validation split and chooses the
thresholds there by the members' policy. Until then the thresholds are 0.5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.checkpoint import build_checkpoint, load_checkpoint
from ml.config import DataConfig
from ml.errors import ModelError
from ml.models import create_model

MUST_AGREE = ("model_name", "model_kwargs", "labels", "task", "data_config", "in_chans")


def join_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """An `ensemble` checkpoint holding the members at `paths`, in that order; `ModelError` says which member
    differs from the first, and in what."""
    if len(paths) < 2:
        raise ModelError(f"an ensemble needs at least two member checkpoints; got {len(paths)}")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    if first["model_name"] == "ensemble":
        raise ModelError(f"{paths[0]} is an ensemble already: join its members instead")
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        for key in MUST_AGREE:
            if ckpt.get(key) != first.get(key):
                raise ModelError(f"{path} differs from {paths[0]} in {key}: {ckpt.get(key)!r} against "
                                 f"{first.get(key)!r}; an ensemble's members share architecture, options, labels "
                                 "and input")
    kwargs = {"member": first["model_name"], "count": len(ckpts), "member_kwargs": dict(first["model_kwargs"])}
    model = create_model("ensemble", num_classes=len(first["labels"]), in_chans=first.get("in_chans"), **kwargs)
    for member, path, ckpt in zip(model.members, paths, ckpts, strict=True):
        try:
            member.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise ModelError(f"{path}: weights do not fit '{first['model_name']}': {exc}") from None
    train_config = dict(first.get("train_config") or {})
    train_config["model"] = "ensemble"
    train_config["params"] = dict(train_config.get("params") or {}) | {"model_kwargs": kwargs}
    train_config["ensemble_members"] = [_provenance(path, ckpt) for path, ckpt in zip(paths, ckpts, strict=True)]
    val = [((c.get("metrics") or {}).get("val") or {}).get("mean_auroc") for c in ckpts]
    return build_checkpoint(
        model, model_kwargs=kwargs, labels=list(first["labels"]), task=first["task"],
        data_config=DataConfig.model_validate(first["data_config"]), train_config=train_config,
        metrics={"members_val_mean_auroc": val}, epoch=max(int(c.get("epoch") or 0) for c in ckpts),
    )


def _provenance(path: str | Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    params = (ckpt.get("train_config") or {}).get("params") or {}
    return {"checkpoint": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "seed": params.get("seed"), "epoch": ckpt.get("epoch")}
