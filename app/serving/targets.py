"""Grad-CAM targets: the labels a request asks a map for, by name, or `top` for the most probable."""

from __future__ import annotations

import numpy as np

from app.serving.errors import InvalidInput

TOP = "top"


def split_targets(targets: list[str]) -> list[str]:
    """Target names from repeated and comma-separated query values, without repeats; none means `top`."""
    names = [t.strip() for item in targets for t in item.split(",") if t.strip()]
    return list(dict.fromkeys(names)) or [TOP]


def check_targets(labels: list[str], names: list[str]) -> None:
    """Refuse a target that is neither `top` nor a label of the model (matching ignores case)."""
    known = {label.lower() for label in labels} | {TOP}
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        raise InvalidInput(
            f"unknown target '{unknown[0]}': the model's labels are {', '.join(labels)} (or use '{TOP}')",
            code="unknown_target",
        )


def target_indices(labels: list[str], names: list[str], probs: np.ndarray) -> list[int]:
    """Class indices for checked target names (`top`: the most probable), in order, without repeats."""
    by_name = {label.lower(): i for i, label in enumerate(labels)}
    indices = [int(np.argmax(probs)) if name.lower() == TOP else by_name[name.lower()] for name in names]
    return list(dict.fromkeys(indices))
