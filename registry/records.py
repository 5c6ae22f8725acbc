"""Plain, immutable records: what leaves the registry package instead of ORM rows."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

R = TypeVar("R")

# ids, versions and offsets are INTEGER columns (32 bits on PostgreSQL): larger numbers are refused at the door
MAX_INT = 2**31 - 1


def to_record(row: Any, cls: type[R], **extra: Any) -> R:
    """Copy the fields `cls` declares from an ORM row (enums become their values)."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in extra:
            values[f.name] = extra[f.name]
            continue
        value = getattr(row, f.name)
        values[f.name] = value.value if isinstance(value, enum.Enum) else value
    return cls(**values)


@dataclass(frozen=True)
class DatasetRecord:
    id: int
    name: str
    kind: str
    location: str
    options: dict[str, Any]
    labels: list[str]
    task: str
    splits: dict[str, int]
    description: str
    created_at: datetime


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    status: str
    model: str
    register_as: str | None
    dataset_id: int
    params: dict[str, Any]
    model_version_id: int | None
    split: str | None
    epoch: int
    epochs: int
    step: int
    steps: int
    latest_metrics: dict[str, Any]
    error_code: str | None
    error: str | None
    result: dict[str, Any]
    cancel_requested: bool
    stop_reason: str | None
    phase: str | None
    phase_started_at: datetime | None
    start_epoch: int
    heartbeat_at: datetime | None
    worker: str | None
    device: str | None
    attempts: int
    lease_expires_at: datetime | None
    task_id: str | None
    submitted_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    dataset_name: str = ""
    run_id: int | None = None
    # training: the version it produced; evaluation: the version it evaluates
    model_version: VersionRef | None = None


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: int


@dataclass(frozen=True)
class RunRecord:
    id: int
    job_id: int
    model: str
    dataset_id: int
    config: dict[str, Any]
    status: str
    device: str | None
    artifact_prefix: str
    best_epoch: int | None
    resumed_from_epoch: int | None
    report: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class ArtifactRecord:
    name: str
    uri: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class MetricRecord:
    epoch: int
    split: str
    name: str
    value: float | None


@dataclass(frozen=True)
class CheckpointRecord:
    id: int
    run_id: int | None
    kind: str
    uri: str
    size_bytes: int
    sha256: str
    epoch: int | None
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ModelVersionRecord:
    id: int
    name: str
    version: int
    architecture: str
    checkpoint_id: int
    run_id: int | None
    dataset_id: int | None
    labels: list[str]
    task: str
    data_config: dict[str, Any]
    thresholds: list[float]
    metrics: dict[str, Any]
    description: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    checkpoint: CheckpointRecord | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        """`admin` implies every scope."""
        return self.revoked_at is None and ("admin" in self.scopes or scope in self.scopes)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
