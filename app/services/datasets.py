"""Registering a dataset: where it is, what the adapter makes of it.

Every path a caller names (the dataset's `path` and each option typed `DataPath`, such as a MedMNIST
`file` or an NIH `csv`) must resolve, links followed, inside a configured data root. `..` is refused
outright; an absolute path must be spelled inside a root (as configured or as resolved), so the file
system is never asked about anything else, and a path outside the roots gets the same answer whether
or not it exists. `path` is relative to each root, a relative option to the dataset's own folder. The
adapter gets the real paths that were checked, and its options are validated against its signature
first (unknown keys and wrong types are 422). File-system errors (a name too long, a link loop, no
permission) are 422s naming the field; messages show paths relative to the data roots.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path, PurePath
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.services.errors import InvalidDataset, InvalidField, ServiceError
from ml.data import create_dataset, list_datasets
from ml.data.options import path_options, validate_options
from ml.errors import CXRError
from registry.datasets import create_dataset as create_dataset_row
from registry.datasets import find_dataset
from registry.errors import Conflict
from registry.paths import PathView
from registry.records import DatasetRecord

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255  # NAME_MAX on Linux: a longer part is ENAMETOOLONG
MAX_PATH_BYTES = 4095  # PATH_MAX less the terminating NUL
_FS_ERRORS = {
    errno.ENAMETOOLONG: "a name in it is too long for the file system",
    errno.ELOOP: "it goes round a loop of symbolic links",
    errno.EACCES: "the service is not allowed to read it",
    errno.EPERM: "the service is not allowed to read it",
}


def resolve_location(path: str, data_roots: list[Path], *, field: str = "path",
                     bases: list[Path] | None = None) -> Path:
    """The real path `path` names inside a data root; a 422 naming `field` otherwise.

    A relative `path` is tried against each of `bases` (default: the data roots) in turn.
    """
    shown = _shown(path)
    given = PurePath(path)
    if not path.strip() or "\x00" in path or ".." in given.parts:
        raise InvalidField(field, f"'{shown}' is not allowed: give a path inside a data root, without '..'")
    try:
        encoded = [os.fsencode(part) for part in given.parts]
    except UnicodeEncodeError:
        raise InvalidField(field, f"'{shown}' is not a valid file name (it holds a lone surrogate)") from None
    if sum(map(len, encoded)) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in encoded):
        raise InvalidField(field, f"'{shown}' is too long: at most {MAX_NAME_BYTES} bytes a name, "
                             f"{MAX_PATH_BYTES} in all")
    roots = [Path(r).absolute() for r in data_roots]
    real_roots = [r.resolve() for r in roots]
    if given.is_absolute():
        # spelled inside a root, or refused without asking the file system whether it exists
        candidates = [Path(path)] if any(given.is_relative_to(r) for r in roots + real_roots) else []
    else:
        candidates = [base / path for base in (bases if bases is not None else roots)]
    outside = not candidates
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))  # follows links: a link inside a root may point elsewhere
        if not any(real.is_relative_to(root) for root in real_roots):
            outside = True
            continue
        try:
            real.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            why = _FS_ERRORS.get(exc.errno or 0, f"the file system refused it ({errno.errorcode.get(exc.errno or 0)})")
            raise InvalidField(field, f"'{shown}' cannot be used: {why}") from None
        return real
    if outside:
        raise InvalidField(field, f"'{shown}' is outside the configured data roots")
    raise InvalidField(field, f"'{shown}' does not exist in any data root")


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
        raise InvalidField("kind", f"unknown dataset kind '{_shown(kind)}'; known: {', '.join(list_datasets())}")
    location = resolve_location(path, data_roots)
    options = _checked_options(kind, options, location, data_roots)
    view = PathView(data_roots)
    try:
        dataset = create_dataset(kind, location, **options)
    except (CXRError, OSError, ValueError, TypeError) as exc:  # what is wrong with the files or options
        message = view.text(" ".join(str(exc).split()))
        raise InvalidDataset(f"{kind} cannot read '{_shown(path)}': {message}",
                             details=[{"field": "path", "message": message}]) from None
    except Exception as exc:  # an adapter's own bug on these files: still the caller's 4xx
        log.exception("%s adapter failed on %s", kind, location)
        raise InvalidDataset(f"{kind} cannot read '{_shown(path)}' ({type(exc).__name__}; the service log has "
                             "the details)", details=[{"field": "path", "message": type(exc).__name__}]) from None
    splits = {str(k): int(v) for k, v in dataset.metadata["split"].value_counts().sort_index().items()}
    return create_dataset_row(session, name=name, kind=kind, location=str(location), options=options,
                              labels=list(dataset.pathologies), task=str(dataset.task), splits=splits,
                              description=description)


def _checked_options(kind: str, options: dict[str, Any], location: Path, data_roots: list[Path]) -> dict[str, Any]:
    """The options validated against the adapter's signature, with each file option's real path."""
    try:
        checked = validate_options(kind, options)
    except ValidationError as exc:
        details = [{"field": ".".join(["options", *map(str, e["loc"])]), "message": e["msg"]} for e in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ServiceError(f"{kind}: {message}", code="validation_error", details=details) from None
    folder = location if location.is_dir() else location.parent
    for key in path_options(kind):
        if checked.get(key) is not None:
            real = resolve_location(str(checked[key]), data_roots, field=f"options.{key}", bases=[folder])
            checked[key] = str(real)
    return checked


def _shown(text: str, limit: int = 200) -> str:
    """A caller's string as echoed in a message: printable and short."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else f"{text[:limit]}..."
