"""Registering a dataset: where it is, what the adapter makes of it.

The path must resolve (symlinks included) inside a configured data root: relative paths are taken
relative to each root, absolute ones must lie under one, and `..` is refused outright. The adapter is
built once to validate the files and options and to record the labels, task and split sizes; nothing
slower than the adapter's own reading runs here.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from sqlalchemy.orm import Session

from app.api.errors import ApiError
from app.services import invalid
from ml.data import create_dataset, list_datasets
from registry.datasets import create_dataset as create_dataset_row
from registry.datasets import find_dataset
from registry.errors import Conflict
from registry.records import DatasetRecord


def resolve_location(path: str, data_roots: list[Path]) -> Path:
    """The real path `path` names inside a data root; a 422 naming `path` otherwise."""
    given = PurePath(path)
    if not path.strip() or ".." in given.parts:
        raise invalid("path", f"'{path}' is not allowed: give a path inside a data root, without '..'")
    roots = [Path(r).resolve() for r in data_roots]
    candidates = [Path(path)] if given.is_absolute() else [root / path for root in roots]
    outside = False
    for candidate in candidates:
        real = candidate.resolve()  # follows links: a link inside a root may point elsewhere
        if not any(real.is_relative_to(root) for root in roots):
            outside = True
        elif real.exists():
            return real
    if outside:
        raise invalid("path", f"'{path}' is outside the configured data roots")
    raise invalid("path", f"'{path}' does not exist in any data root")


def register_dataset(
    session: Session,
    *,
    name: str,
    kind: str,
    path: str,
    options: dict[str, Any],
    description: str,
    data_roots: list[Path],
) -> DatasetRecord:
    """Validate and record a dataset; 409 if the name is taken, 422 naming the field that is wrong."""
    if find_dataset(session, name=name) is not None:
        raise Conflict(f"a dataset named '{name}' already exists")
    if kind not in list_datasets():
        raise invalid("kind", f"unknown dataset kind '{kind}'; known: {', '.join(list_datasets())}")
    location = resolve_location(path, data_roots)
    try:
        dataset = create_dataset(kind, location, **options)
    except TypeError as exc:  # an option the adapter does not take
        raise invalid("options", f"{kind}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the adapter's own message says what is wrong with the files
        raise ApiError(422, "invalid_dataset", f"{kind} cannot read '{path}': {' '.join(str(exc).split())}",
                       details=[{"field": "path", "message": str(exc)}]) from None
    splits = {str(k): int(v) for k, v in dataset.metadata["split"].value_counts().sort_index().items()}
    return create_dataset_row(session, name=name, kind=kind, location=str(location), options=options,
                              labels=list(dataset.pathologies), task=str(dataset.task), splits=splits,
                              description=description)
