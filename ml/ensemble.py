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
from ml.models.ensemble import MAX_MEMBERS

MUST_AGREE = ("model_name", "model_kwargs", "labels", "task", "data_config", "in_chans")


def join_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """An `ensemble` checkpoint holding the members at `paths`, in that order (an ensemble among them
    contributes its members); `ModelError` says which member differs from the first, and in what."""
    members = [m for path in paths for m in _members(path, load_checkpoint(path))]
    if len(members) < 2:
        raise ModelError(f"an ensemble needs at least two member checkpoints; got {len(members)}")
    if len(members) > MAX_MEMBERS:
        raise ModelError(f"an ensemble holds at most {MAX_MEMBERS} members; these checkpoints make {len(members)}")
    (first_name, first), rest = members[0], members[1:]
    for name, ckpt in rest:
        for key in MUST_AGREE:
            if ckpt.get(key) != first.get(key):
                raise ModelError(f"{name} differs from {first_name} in {key}: {ckpt.get(key)!r} against "
                                 f"{first.get(key)!r}; an ensemble's members share architecture, options, labels "
                                 "and input")
    kwargs = {"member": first["model_name"], "count": len(members), "member_kwargs": dict(first["model_kwargs"])}
    model = create_model("ensemble", num_classes=len(first["labels"]), in_chans=first.get("in_chans"), **kwargs)
    for member, (name, ckpt) in zip(model.members, members, strict=True):
        try:
            member.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise ModelError(f"{name}: weights do not fit '{first['model_name']}': {exc}") from None
    train_config = dict(first.get("train_config") or {})
    train_config["model"] = "ensemble"
    train_config["params"] = dict(train_config.get("params") or {}) | {"model_kwargs": kwargs}
    train_config["ensemble_members"] = [ckpt["provenance"] for _, ckpt in members]
    val = [((c.get("metrics") or {}).get("val") or {}).get("mean_auroc") for _, c in members]
    return build_checkpoint(
        model, model_kwargs=kwargs, labels=list(first["labels"]), task=first["task"],
        data_config=DataConfig.model_validate(first["data_config"]), train_config=train_config,
        metrics={"members_val_mean_auroc": val}, epoch=max(int(c.get("epoch") or 0) for _, c in members),
    )


def _members(path: str | Path, ckpt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name for messages, checkpoint-like dict with its `provenance`) for each model in `ckpt`: itself, or
    each member of an ensemble, with the member's weights, options and record from when it was joined."""
    if ckpt["model_name"] != "ensemble":
        return [(str(path), ckpt | {"provenance": _provenance(path, ckpt)})]
    kwargs = ckpt["model_kwargs"]
    member_kwargs = dict(kwargs.get("member_kwargs") or {})
    train_config = dict(ckpt.get("train_config") or {})
    records = train_config.get("ensemble_members") or []
    vals = (ckpt.get("metrics") or {}).get("members_val_mean_auroc") or []
    train_config |= {"model": kwargs["member"],
                     "params": dict(train_config.get("params") or {}) | {"model_kwargs": member_kwargs}}
    out = []
    for i in range(int(kwargs["count"])):
        prefix = f"members.{i}."
        record = dict(records[i]) if i < len(records) else {"checkpoint": None, "seed": None}
        out.append((f"{path} (member {i})", {
            "model_name": kwargs["member"], "model_kwargs": member_kwargs, "labels": ckpt["labels"],
            "task": ckpt["task"], "data_config": ckpt["data_config"], "in_chans": ckpt.get("in_chans"),
            "epoch": record.get("epoch"), "train_config": train_config,
            "state_dict": {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)},
            "metrics": {"val": {"mean_auroc": vals[i] if i < len(vals) else None}},
            "provenance": record | {"from_ensemble": str(path)},
        }))
    return out


def _provenance(path: str | Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    params = (ckpt.get("train_config") or {}).get("params") or {}
    return {"checkpoint": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "seed": params.get("seed"), "epoch": ckpt.get("epoch")}
