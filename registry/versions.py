"""Model versions and aliases. Serving resolves `name`, `name@alias` or `name:version`; a bare name
means its `production` alias, never "the latest"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.records import MAX_INT, CheckpointRecord, ModelVersionRecord, to_record
from registry.tables import Alias, Checkpoint, ModelVersion, utcnow

DEFAULT_ALIAS = "production"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}"
_REF = re.compile(rf"^(?P<name>{NAME_PATTERN})(?:@(?P<alias>{NAME_PATTERN})|:(?P<version>[0-9]+))?\Z")


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def default_model_name(dataset: str, architecture: str) -> str:
    """The registered name a training job's result gets when the request names none."""
    return f"{dataset}-{architecture}"[:100]


def parse_ref(text: str) -> ModelRef:
    """`name` (its production alias), `name@alias` or `name:version`; ValueError says what is allowed.

    A version is bounded here, where it is parsed: the registry's integer columns hold 1 to 2**31 - 1.
    """
    m = _REF.match(text.strip())
    if m is None:
        shown = text[:120].encode("ascii", "backslashreplace").decode("ascii")
        raise ValueError(f"'{shown}' is not a model reference: use name, name@alias or name:version")
    if m["version"] is not None:
        digits = m["version"].lstrip("0")
        if not digits or len(digits) > 10 or int(digits) > MAX_INT:
            raise ValueError(f"model '{m['name']}': a version is a whole number from 1 to {MAX_INT}")
        return ModelRef(m["name"], version=int(digits))
    return ModelRef(m["name"], alias=m["alias"] or DEFAULT_ALIAS)


def _record(session: Session, row: ModelVersion) -> ModelVersionRecord:
    aliases = tuple(session.scalars(select(Alias.alias).where(Alias.model_version_id == row.id).order_by(Alias.alias)))
    ckpt = session.get(Checkpoint, row.checkpoint_id)
    return to_record(row, ModelVersionRecord, aliases=aliases,
                     checkpoint=to_record(ckpt, CheckpointRecord) if ckpt is not None else None)


def create_model_version(
    session: Session,
    *,
    name: str,
    architecture: str,
    checkpoint_id: int,
    labels: list[str],
    task: str,
    data_config: dict[str, Any],
    thresholds: list[float],
    metrics: dict[str, Any],
    run_id: int | None = None,
    dataset_id: int | None = None,
    description: str = "",
) -> ModelVersionRecord:
    """The next version of `name`; for a run that already has a version, that version (idempotent)."""
    if run_id is not None:
        existing = session.scalars(select(ModelVersion).where(ModelVersion.run_id == run_id)).one_or_none()
        if existing is not None:
            return _record(session, existing)
    version = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0) + 1
    row = ModelVersion(name=name, version=version, architecture=architecture, checkpoint_id=checkpoint_id,
                       run_id=run_id, dataset_id=dataset_id, labels=labels, task=task, data_config=data_config,
                       thresholds=thresholds, metrics=metrics, description=description)
    session.add(row)
    session.flush()
    return _record(session, row)


def resolve(session: Session, ref: ModelRef | str) -> ModelVersionRecord:
    """The version a reference points at; NotFound names what is missing."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if ref.version is not None:
        row = session.scalars(
            select(ModelVersion).where(ModelVersion.name == ref.name, ModelVersion.version == ref.version)
        ).one_or_none()
    else:
        alias = session.get(Alias, (ref.name, ref.alias))
        row = session.get(ModelVersion, alias.model_version_id) if alias is not None else None
    if row is None:
        known = model_names(session)
        if ref.name not in known:
            raise NotFound(f"no model named '{ref.name}' (known: {', '.join(known) or 'none'})")
        raise NotFound(f"model '{ref}' does not exist")
    return _record(session, row)


def get_model_version(session: Session, *, version_id: int) -> ModelVersionRecord:
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise NotFound(f"model version {version_id} does not exist")
    return _record(session, row)


def model_names(session: Session) -> list[str]:
    return list(session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name)))


def list_versions(session: Session, *, name: str | None = None) -> list[ModelVersionRecord]:
    stmt = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    return [_record(session, r) for r in session.scalars(stmt)]


def set_alias(session: Session, *, name: str, alias: str, version: int) -> ModelVersionRecord:
    """Point `name@alias` at `version` (creating the alias or moving it)."""
    target = resolve(session, ModelRef(name, version=version))
    row = session.get(Alias, (name, alias))
    if row is None:
        session.add(Alias(name=name, alias=alias, model_version_id=target.id))
    else:
        row.model_version_id, row.updated_at = target.id, utcnow()
    session.flush()
    return get_model_version(session, version_id=target.id)


def aliases(session: Session) -> dict[str, int]:
    """`name@alias` -> model version id, for change detection by the API's model cache."""
    return {f"{a.name}@{a.alias}": a.model_version_id for a in session.scalars(select(Alias))}
