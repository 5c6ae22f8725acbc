"""Runs, their per-epoch metrics and their checkpoints. Every write is idempotent, so a resumed task
that redoes an epoch re-writes the same rows instead of adding new ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.records import ArtifactRecord, CheckpointRecord, MetricRecord, RunRecord, VersionRef, to_record
from registry.tables import (
    Checkpoint,
    Dataset,
    JobStatus,
    ModelVersion,
    Run,
    RunArtifact,
    RunMetric,
    finite,
    utcnow,
)


def get_or_create_run(
    session: Session,
    *,
    job_id: int,
    model: str,
    dataset_id: int,
    config: dict[str, Any],
    artifact_prefix: str,
    device: str | None,
) -> RunRecord:
    """The job's run, created on its first delivery and reused by every later one."""
    row = session.scalars(select(Run).where(Run.job_id == job_id).with_for_update()).one_or_none()
    if row is None:
        row = Run(job_id=job_id, model=model, dataset_id=dataset_id, config=config, status=JobStatus.RUNNING,
                  artifact_prefix=artifact_prefix, device=device)
        session.add(row)
    else:
        row.status, row.device = JobStatus.RUNNING, device
    session.flush()
    return to_record(row, RunRecord)


def _row(session: Session, run_id: int) -> Run:
    row = session.get(Run, run_id)
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    return row


def get_run(session: Session, *, run_id: int) -> RunRecord:
    return to_record(_row(session, run_id), RunRecord)


def list_runs(
    session: Session,
    *,
    model: str | None = None,
    dataset: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[RunRecord], int]:
    """A page of runs, newest first, filtered by architecture, dataset name and status, and the total count
    matching the filter."""
    stmt = select(Run)
    if model is not None:
        stmt = stmt.where(Run.model == model)
    if dataset is not None:
        stmt = stmt.join(Dataset, Dataset.id == Run.dataset_id).where(Dataset.name == dataset)
    if status is not None:
        stmt = stmt.where(Run.status == JobStatus(status))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Run.id.desc()).limit(limit).offset(offset))
    return [to_record(r, RunRecord) for r in rows], total


def metrics_of_runs(session: Session, *, run_ids: list[int]) -> dict[int, list[MetricRecord]]:
    """Each run's metric rows, ordered by epoch (for a page of runs in one query)."""
    found: dict[int, list[MetricRecord]] = {run_id: [] for run_id in run_ids}
    rows = session.scalars(select(RunMetric).where(RunMetric.run_id.in_(run_ids))
                           .order_by(RunMetric.run_id, RunMetric.epoch, RunMetric.split, RunMetric.name))
    for r in rows:
        found[r.run_id].append(to_record(r, MetricRecord))
    return found


def versions_of_runs(session: Session, *, run_ids: list[int]) -> dict[int, VersionRef]:
    """The model version each run produced, for those that produced one."""
    rows = session.execute(select(ModelVersion.run_id, ModelVersion.name, ModelVersion.version)
                           .where(ModelVersion.run_id.in_(run_ids)))
    return {run_id: VersionRef(name=name, version=version) for run_id, name, version in rows}


def update_run(session: Session, *, run_id: int, device: str | None = None,
               resumed_from_epoch: int | None = None) -> None:
    """Record the device a delivery trains on and, when it resumed, the epoch it resumed from."""
    row = _row(session, run_id)
    if device is not None:
        row.device = device
    if resumed_from_epoch is not None:
        row.resumed_from_epoch = resumed_from_epoch


def record_metrics(session: Session, *, run_id: int, epoch: int, metrics: dict[str, dict[str, Any]]) -> None:
    """Upsert {split: {name: value}} for one epoch (numbers only; None and NaN are stored as None)."""
    existing = {
        (m.split, m.name): m
        for m in session.scalars(select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.epoch == epoch))
    }
    for split, values in metrics.items():
        for name, value in values.items():
            if value is not None and not isinstance(value, (int, float)):
                continue
            number = finite(float(value)) if value is not None else None
            row = existing.get((split, name))
            if row is None:
                session.add(RunMetric(run_id=run_id, epoch=epoch, split=split, name=name, value=number))
            else:
                row.value = number
    session.flush()


def run_metrics(session: Session, *, run_id: int) -> list[MetricRecord]:
    rows = session.scalars(
        select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.epoch, RunMetric.split, RunMetric.name)
    )
    return [to_record(r, MetricRecord) for r in rows]


def upsert_checkpoint(
    session: Session,
    *,
    run_id: int | None,
    kind: str,
    uri: str,
    size_bytes: int,
    sha256: str,
    epoch: int | None,
    metrics: dict[str, Any] | None = None,
) -> CheckpointRecord:
    row = None
    if run_id is not None:
        row = session.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.kind == kind)
        ).one_or_none()
    if row is None:
        row = Checkpoint(run_id=run_id, kind=kind)
        session.add(row)
    row.uri, row.size_bytes, row.sha256, row.epoch = uri, size_bytes, sha256, epoch
    row.metrics = metrics or {}
    row.created_at = utcnow()
    session.flush()
    return to_record(row, CheckpointRecord)


def get_checkpoint(session: Session, *, checkpoint_id: int) -> CheckpointRecord:
    row = session.get(Checkpoint, checkpoint_id)
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} does not exist")
    return to_record(row, CheckpointRecord)


def run_checkpoints(session: Session, *, run_id: int) -> list[CheckpointRecord]:
    rows = session.scalars(select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.kind))
    return [to_record(r, CheckpointRecord) for r in rows]


def record_artifact(
    session: Session, *, run_id: int, name: str, uri: str, media_type: str, size_bytes: int, sha256: str
) -> ArtifactRecord:
    """Upsert the run's artifact `name` (a resumed run re-records the same names)."""
    row = session.scalars(
        select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.name == name)).one_or_none()
    if row is None:
        row = RunArtifact(run_id=run_id, name=name)
        session.add(row)
    row.uri, row.media_type, row.size_bytes, row.sha256 = uri, media_type, size_bytes, sha256
    row.created_at = utcnow()
    session.flush()
    return to_record(row, ArtifactRecord)


def run_artifacts(session: Session, *, run_id: int) -> list[ArtifactRecord]:
    rows = session.scalars(select(RunArtifact).where(RunArtifact.run_id == run_id).order_by(RunArtifact.name))
    return [to_record(r, ArtifactRecord) for r in rows]


def get_artifact(session: Session, *, run_id: int, name: str) -> ArtifactRecord:
    _row(session, run_id)
    row = session.scalars(
        select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.name == name)).one_or_none()
    if row is None:
        known = ", ".join(a.name for a in run_artifacts(session, run_id=run_id)) or "none yet"
        raise NotFound(f"run {run_id} has no artifact '{name}' (artifacts: {known})")
    return to_record(row, ArtifactRecord)


def finish_run(
    session: Session, *, run_id: int, status: str, best_epoch: int | None = None, report: dict[str, Any] | None = None
) -> RunRecord:
    row = _row(session, run_id)
    row.status = JobStatus(status)
    row.finished_at = utcnow()
    if best_epoch is not None:
        row.best_epoch = best_epoch
    if report is not None:
        row.report = report
    session.flush()
    return to_record(row, RunRecord)
