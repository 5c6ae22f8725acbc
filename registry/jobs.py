"""Jobs: the API writes them, workers claim them with a lease, report progress and finish them.

A worker holds a job through a lease it renews (heartbeat). A second delivery of the same task while
the lease is alive is told the job is busy; after the lease lapses (its worker died) the next delivery
takes the job over and resumes from the last checkpoint.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.errors import Conflict, NotFound
from registry.records import JobRecord, to_record
from registry.tables import Job, JobKind, JobStatus, ModelVersion, Run, utcnow


def _record(session: Session, row: Job) -> JobRecord:
    run_id = session.scalar(select(Run.id).where(Run.job_id == row.id))
    version_id = None
    if run_id is not None:
        version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.run_id == run_id))
    return to_record(row, JobRecord, run_id=run_id, produced_version_id=version_id)


def _row(session: Session, job_id: int, *, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    return row


def create_job(
    session: Session,
    *,
    kind: str,
    model: str,
    dataset_id: int,
    params: dict[str, Any],
    register_as: str | None = None,
    model_version_id: int | None = None,
    split: str | None = None,
    epochs: int = 0,
    submitted_by: str | None = None,
) -> JobRecord:
    row = Job(kind=JobKind(kind), status=JobStatus.QUEUED, model=model, dataset_id=dataset_id, params=params,
              register_as=register_as, model_version_id=model_version_id, split=split, epochs=epochs,
              submitted_by=submitted_by)
    session.add(row)
    session.flush()
    return _record(session, row)


def get_job(session: Session, *, job_id: int) -> JobRecord:
    return _record(session, _row(session, job_id))


def list_jobs(
    session: Session, *, kind: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[JobRecord], int]:
    """A page of jobs, newest first, and the total count matching the filter."""
    stmt = select(Job)
    if kind is not None:
        stmt = stmt.where(Job.kind == JobKind(kind))
    if status is not None:
        stmt = stmt.where(Job.status == JobStatus(status))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset))
    return [_record(session, r) for r in rows], total


def set_task_id(session: Session, *, job_id: int, task_id: str) -> None:
    _row(session, job_id).task_id = task_id


class Claim(str, enum.Enum):
    GRANTED = "granted"  # run it (fresh or resuming)
    FINISHED = "finished"  # nothing to do: the job already ended
    BUSY = "busy"  # another live worker holds it
    CANCELLED = "cancelled"  # cancelled before it started


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    job: JobRecord


def claim_job(session: Session, *, job_id: int, worker: str, device: str, lease_seconds: float) -> ClaimResult:
    """Take the job for `worker` unless it ended, is cancelled, or a live lease of another worker holds it."""
    row = _row(session, job_id, lock=True)
    now = utcnow()
    if row.status.finished:
        return ClaimResult(Claim.FINISHED, _record(session, row))
    if row.cancel_requested:
        _finish(row, JobStatus.CANCELLED, None, now)
        return ClaimResult(Claim.CANCELLED, _record(session, row))
    lease = _aware(row.lease_expires_at)
    if row.status is JobStatus.RUNNING and row.worker != worker and lease is not None and lease > now:
        return ClaimResult(Claim.BUSY, _record(session, row))
    row.status = JobStatus.RUNNING
    row.worker, row.device = worker, device
    row.attempts += 1
    row.lease_expires_at = now + timedelta(seconds=lease_seconds)
    row.started_at = row.started_at or now
    row.error = None
    session.flush()
    return ClaimResult(Claim.GRANTED, _record(session, row))


def heartbeat(session: Session, *, job_id: int, worker: str, lease_seconds: float) -> bool:
    """Renew the lease; returns whether cancellation was requested. Conflict if the lease was lost."""
    row = _row(session, job_id, lock=True)
    if row.worker != worker or row.status is not JobStatus.RUNNING:
        raise Conflict(f"job {job_id} is no longer held by {worker} (status {row.status.value}, worker {row.worker})")
    row.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
    return row.cancel_requested


def update_progress(
    session: Session,
    *,
    job_id: int,
    epoch: int | None = None,
    epochs: int | None = None,
    step: int | None = None,
    steps: int | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    row = _row(session, job_id)
    for name, value in (("epoch", epoch), ("epochs", epochs), ("step", step), ("steps", steps)):
        if value is not None:
            setattr(row, name, value)
    if metrics is not None:
        row.latest_metrics = metrics


def finish_job(
    session: Session, *, job_id: int, status: str, error: str | None = None, result: dict[str, Any] | None = None
) -> JobRecord:
    row = _row(session, job_id, lock=True)
    _finish(row, JobStatus(status), error, utcnow())
    if result is not None:
        row.result = result
    session.flush()
    return _record(session, row)


def _finish(row: Job, status: JobStatus, error: str | None, now: datetime) -> None:
    row.status = status
    row.error = error
    row.finished_at = now
    row.lease_expires_at = None


def request_cancel(session: Session, *, job_id: int) -> JobRecord:
    """A queued job is cancelled at once; a running one gets a flag its training loop checks."""
    row = _row(session, job_id, lock=True)
    if row.status.finished:
        raise Conflict(f"job {job_id} already {row.status.value}")
    row.cancel_requested = True
    if row.status is JobStatus.QUEUED:
        _finish(row, JobStatus.CANCELLED, None, utcnow())
    session.flush()
    return _record(session, row)


def orphaned_jobs(session: Session, *, unsent_after_seconds: float = 60) -> list[JobRecord]:
    """Jobs to send again: running with a lapsed lease (worker died), or queued but never sent."""
    now = utcnow()
    lapsed = select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    unsent = select(Job).where(Job.status == JobStatus.QUEUED, Job.task_id.is_(None),
                               Job.created_at < now - timedelta(seconds=unsent_after_seconds))
    rows = list(session.scalars(lapsed)) + list(session.scalars(unsent))
    return [_record(session, r) for r in rows]


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything here is UTC."""
    if ts is None or ts.tzinfo is not None:
        return ts
    from datetime import UTC

    return ts.replace(tzinfo=UTC)
