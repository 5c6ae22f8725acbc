"""Dataset rows: what workers may read, registered by name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.errors import Conflict, NotFound
from registry.records import DatasetRecord, to_record
from registry.tables import Dataset


def create_dataset(
    session: Session,
    *,
    name: str,
    kind: str,
    location: str,
    options: dict[str, Any],
    labels: list[str],
    task: str,
    splits: dict[str, int],
    description: str = "",
) -> DatasetRecord:
    if find_dataset(session, name=name) is not None:
        raise Conflict(f"a dataset named '{name}' already exists")
    row = Dataset(name=name, kind=kind, location=location, options=options, labels=labels, task=task,
                  splits=splits, description=description)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # registered concurrently
        raise Conflict(f"a dataset named '{name}' already exists") from None
    return to_record(row, DatasetRecord)


def get_dataset(session: Session, *, name: str | None = None, dataset_id: int | None = None) -> DatasetRecord:
    stmt = select(Dataset).where(Dataset.name == name) if name is not None else select(Dataset).where(
        Dataset.id == dataset_id)
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise NotFound(f"dataset '{name if name is not None else dataset_id}' is not registered")
    return to_record(row, DatasetRecord)


def find_dataset(session: Session, *, name: str) -> DatasetRecord | None:
    row = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    return to_record(row, DatasetRecord) if row is not None else None


def list_datasets(session: Session) -> list[DatasetRecord]:
    return [to_record(r, DatasetRecord) for r in session.scalars(select(Dataset).order_by(Dataset.name))]
