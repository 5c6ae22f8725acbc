"""ORM tables. Rows never leave the package: queries turn them into `registry.records`."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON as _JSON
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobKind(str, enum.Enum):
    TRAIN = "train"
    EVALUATE = "evaluate"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which stores it without offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


_TS = UTCDateTime()


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (PostgreSQL's JSON and HTTP JSON refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class JSON(TypeDecorator[Any]):
    """JSON that stores NaN as null, so a metric that is undefined never breaks a write or a response."""

    impl = _JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return finite(value)


def _enum(cls: type[enum.Enum]) -> Enum:
    """Stored as its lower-case values in a VARCHAR (no native enum type to migrate)."""
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(50))  # the ml/ adapter name
    location: Mapped[str] = mapped_column(Text)  # a path under a configured data root
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    task: Mapped[str] = mapped_column(String(20))
    splits: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # split name -> rows
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)


class Job(Base):
    """A training or evaluation request and its life: written before its task is sent."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), index=True)
    model: Mapped[str] = mapped_column(String(100))  # architecture (ml model name)
    register_as: Mapped[str | None] = mapped_column(String(100))  # registered model name for the result
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # evaluation jobs: which model version, on which split
    # use_alter: jobs -> model_versions -> runs -> jobs is a cycle; this key is added after the tables
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", use_alter=True))
    split: Mapped[str | None] = mapped_column(String(50))
    # progress
    epoch: Mapped[int] = mapped_column(Integer, default=0)  # epochs completed
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    latest_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(50))  # short and stable: dataset_error, internal_error
    error: Mapped[str | None] = mapped_column(Text)  # for a person; no traceback (that is in the worker log)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # evaluation report summary
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_reason: Mapped[str | None] = mapped_column(Text)  # why a job ended without a result, for a person
    # liveness: what the holder does now, since when, and when it last said it was alive
    phase: Mapped[str | None] = mapped_column(String(20))  # preparing, training, evaluating, publishing
    phase_started_at: Mapped[datetime | None] = mapped_column(_TS)
    start_epoch: Mapped[int] = mapped_column(Integer, default=0)  # epochs finished when this attempt began
    heartbeat_at: Mapped[datetime | None] = mapped_column(_TS)
    # who runs it
    worker: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(_TS)
    task_id: Mapped[str | None] = mapped_column(String(100))
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    # timestamps
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(_TS)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)
    updated_at: Mapped[datetime] = mapped_column(_TS, default=utcnow, onupdate=utcnow)


class Run(Base):
    """One training run; exactly one per training job, however often its task is delivered."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    model: Mapped[str] = mapped_column(String(100))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus))
    device: Mapped[str | None] = mapped_column(String(100))
    artifact_prefix: Mapped[str] = mapped_column(Text)  # URI prefix of the run's artifacts
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)  # set when a later delivery resumed it
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)


class RunMetric(Base):
    """One value per (run, epoch, split, name); re-written, never duplicated, when an epoch is redone."""

    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "split", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)


class Checkpoint(Base):
    """A stored checkpoint file; `kind` is last, best or final (one row each per run, updated)."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)


class RunArtifact(Base):
    """A file a run produced (report, plots, config), addressed by name within the run."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    uri: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)


class ModelVersion(Base):
    """A servable model: a registered name and an increasing version, its checkpoint and metadata."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(100))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), unique=True)  # None: imported
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    labels: Mapped[list[str]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(20))
    data_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    thresholds: Mapped[list[float]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)


class Alias(Base):
    """`name@alias` points at one version of `name` (e.g. pneumonia@production)."""

    __tablename__ = "aliases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(_TS, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """An API key: only the sha256 of the secret is kept; `prefix` (shown in listings) finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(_TS)


class AuditEvent(Base):
    """Who (a key's name) did what (`action`) to what (`target`), and when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(_TS, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
