"""Jobs: the API writes them, workers claim them with a lease, report progress and finish them.

A worker holds a job through a lease it renews (heartbeat). A second delivery of the same task while
the lease is alive is told the job is busy; after the lease lapses (its worker died) the next delivery
takes the job over and resumes from the last checkpoint. A sweeper finds jobs to send again with
`requeue_lapsed` (their worker died) and `reserve_unsent` (written but never sent, e.g. broker down).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from registry.errors import AlreadyFinished, CancelRequested, Conflict, NotFound
from registry.records import JobRecord, VersionRef, to_record
from registry.tables import Dataset, Job, JobKind, JobStatus, ModelVersion, Run, utcnow


def _record(session: Session, row: Job) -> JobRecord:
    dataset_name = session.scalar(select(Dataset.name).where(Dataset.id == row.dataset_id)) or ""
    run_id = session.scalar(select(Run.id).where(Run.job_id == row.id))
    version_id = row.model_version_id
    if row.kind is JobKind.TRAIN and run_id is not None:
        version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.run_id == run_id))
    version = None
    if version_id is not None:
        name, number = session.execute(
            select(ModelVersion.name, ModelVersion.version).where(ModelVersion.id == version_id)).one()
        version = VersionRef(name, number)
    return to_record(row, JobRecord, dataset_name=dataset_name, run_id=run_id, model_version=version)


def _row(session: Session, job_id: int, *, lock: bool = False) -> Job:
    # populate_existing: a conditional UPDATE just issued in this session is seen, not the row as first loaded
    stmt = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
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


def get_job(session: Session, *, job_id: int, kind: str | None = None) -> JobRecord:
    """The job; with `kind`, NotFound unless the job is of that kind."""
    row = _row(session, job_id)
    if kind is not None and row.kind is not JobKind(kind):
        raise NotFound(f"{kind} job {job_id} does not exist")
    return _record(session, row)


def list_jobs(
    session: Session, *, kind: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[JobRecord], int]:
    """A page of jobs, newest first, and the total count matching the filter."""
    stmt = select(Job)
    if kind is not None:
        stmt = stmt.where(Job.kind == JobKind(kind))
    if status == "cancelling":  # shown for a running job with a cancel accepted
        stmt = stmt.where(Job.status == JobStatus.RUNNING, Job.cancel_requested.is_(True))
    elif status == "running":
        stmt = stmt.where(Job.status == JobStatus.RUNNING, Job.cancel_requested.is_(False))
    elif status is not None:
        stmt = stmt.where(Job.status == JobStatus(status))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Job.id.desc()).limit(limit).offset(offset))
    return [_record(session, r) for r in rows], total


def set_task_id(session: Session, *, job_id: int, task_id: str) -> None:
    """Record that the job's task was sent (a job without one is re-sent by the sweeper)."""
    _row(session, job_id).task_id = task_id


class Claim(str, enum.Enum):
    GRANTED = "granted"  # run it (fresh or resuming)
    FINISHED = "finished"  # nothing to do: the job already ended
    BUSY = "busy"  # a live lease holds it (this delivery is a duplicate)
    CANCELLED = "cancelled"  # cancelled before it started


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    job: JobRecord


def claim_job(session: Session, *, job_id: int, worker: str, device: str, lease_seconds: float) -> ClaimResult:
    """Take the job for `worker` unless it ended, is cancelled, or a live lease holds it.

    The take is one conditional UPDATE, issued before anything is read, so two deliveries racing for
    the same job cannot both win, on PostgreSQL or SQLite. A live lease means BUSY even for the same
    worker name: a process never claims a job twice, so a second delivery while the first runs is a
    duplicate and must not start a second training.
    """
    now = utcnow()
    claimable = or_(Job.status == JobStatus.QUEUED,
                    and_(Job.status == JobStatus.RUNNING,
                         or_(Job.lease_expires_at.is_(None), Job.lease_expires_at <= now)))
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.cancel_requested.is_(False), claimable)
        .values(status=JobStatus.RUNNING, worker=worker, device=device, attempts=Job.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                phase="preparing", phase_started_at=now, start_epoch=Job.epoch,
                started_at=func.coalesce(Job.started_at, now), error=None, error_code=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    row = _row(session, job_id, lock=True)
    if taken:
        return ClaimResult(Claim.GRANTED, _record(session, row))
    if row.status.finished:
        return ClaimResult(Claim.FINISHED, _record(session, row))
    if row.cancel_requested:
        _finish(session, row, JobStatus.CANCELLED, None)
        session.flush()
        return ClaimResult(Claim.CANCELLED, _record(session, row))
    return ClaimResult(Claim.BUSY, _record(session, row))


def heartbeat(session: Session, *, job_id: int, worker: str, lease_seconds: float) -> bool:
    """Renew the lease; returns whether cancellation was requested. Conflict if the lease was lost.

    A job this worker has already finished (its work commits the result before the heartbeat thread
    stops) is not a lost lease: nothing is renewed and nothing is reported."""
    row = _row(session, job_id, lock=True)
    if row.worker == worker and row.status.finished:
        return False
    _check_holder(row, worker)
    now = utcnow()
    row.lease_expires_at, row.heartbeat_at = now + timedelta(seconds=lease_seconds), now
    return row.cancel_requested


PHASES = ("preparing", "training", "evaluating", "publishing")


def set_phase(session: Session, *, job_id: int, phase: str, start_epoch: int | None = None) -> None:
    """The job's holder enters `phase` now (with `start_epoch`: the epochs finished before this attempt)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase '{phase}'; phases: {', '.join(PHASES)}")
    values: dict[str, Any] = {"phase": phase, "phase_started_at": utcnow()}
    if start_epoch is not None:
        values["start_epoch"] = start_epoch
    session.execute(update(Job).where(Job.id == job_id).values(**values).execution_options(synchronize_session=False))


def is_cancel_requested(session: Session, *, job_id: int) -> bool:
    """Whether the job was asked to stop: one indexed read, cheap enough to ask every half second."""
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def begin_publishing(session: Session, *, job_id: int, worker: str) -> None:
    """The first statement of the transaction that records a job's result: it takes the job's row (a row
    lock on PostgreSQL, the write lock on SQLite) unless a cancel was accepted first, so a cancel and a
    result cannot both win: CancelRequested if the cancel came first (nothing of the result is written:
    the caller's transaction rolls back), Conflict if `worker` lost the job; a cancel arriving later
    waits for this transaction and then finds the job finished (AlreadyFinished).
    """
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING,
               Job.cancel_requested.is_(False))
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        return
    row = _row(session, job_id)
    if row.cancel_requested and row.worker == worker and row.status is JobStatus.RUNNING:
        raise CancelRequested(f"job {job_id} was cancelled before its result was recorded")
    _check_holder(row, worker)


def _check_holder(row: Job, worker: str) -> None:
    if row.worker != worker or row.status is not JobStatus.RUNNING:
        raise Conflict(f"job {row.id} is no longer held by {worker} (status {row.status.value}, worker {row.worker})")


def update_progress(
    session: Session,
    *,
    job_id: int,
    epoch: int | None = None,
    epochs: int | None = None,
    step: int | None = None,
    steps: int | None = None,
    metrics: dict[str, Any] | None = None,
    device: str | None = None,
) -> None:
    row = _row(session, job_id)
    for name, value in (("epoch", epoch), ("epochs", epochs), ("step", step), ("steps", steps), ("device", device)):
        if value is not None:
            setattr(row, name, value)
    if metrics is not None:
        row.latest_metrics = metrics


def finish_job(
    session: Session,
    *,
    job_id: int,
    status: str,
    error: str | None = None,
    error_code: str | None = None,
    result: dict[str, Any] | None = None,
    worker: str | None = None,
    stop_reason: str | None = None,
) -> JobRecord:
    """End the job (and its run, if that is still open) as succeeded, failed or cancelled; a failure has
    an `error_code` (short, stable) and an `error` message.

    With `worker`, Conflict unless that worker still holds the job: a worker whose lease was taken over
    must not overwrite the outcome of the one that took it.
    """
    row = _row(session, job_id, lock=True)
    if worker is not None:
        _check_holder(row, worker)
    _finish(session, row, JobStatus(status), error, error_code, stop_reason)
    if result is not None:
        row.result = result
    session.flush()
    return _record(session, row)


def _finish(session: Session, row: Job, status: JobStatus, error: str | None, error_code: str | None = None,
            stop_reason: str | None = None) -> None:
    now = utcnow()
    row.status, row.error, row.finished_at, row.lease_expires_at = status, error, now, None
    row.phase, row.phase_started_at = None, None
    if status is not JobStatus.SUCCEEDED:
        row.stop_reason = stop_reason or _default_stop_reason(row, status, error)
    row.error_code = (error_code or "failed") if error is not None else None
    run = session.scalars(select(Run).where(Run.job_id == row.id)).one_or_none()
    if run is not None and not run.status.finished:
        run.status, run.finished_at = status, now


def _default_stop_reason(row: Job, status: JobStatus, error: str | None) -> str:
    where = f" after {row.epoch} of {row.epochs} epochs" if row.epochs and row.started_at else ""
    if status is JobStatus.CANCELLED:
        return f"cancelled on request{where}" if row.started_at else "cancelled before it started"
    return f"failed{where}: {error}" if error else f"{status.value}{where}"


def request_cancel(session: Session, *, job_id: int, kind: str | None = None) -> JobRecord:
    """A queued job is cancelled at once; a running one gets a flag its worker reads within a second and
    shows as `cancelling` until it stops. AlreadyFinished once the job ended.

    The flag is set by one conditional UPDATE on an unfinished job, which serialises with the worker's
    `begin_publishing`: a cancel accepted here always ends the job `cancelled`, with no result.
    """
    get_job(session, job_id=job_id, kind=kind)
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
        .values(cancel_requested=True, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    row = _row(session, job_id, lock=True)
    if not taken:
        raise AlreadyFinished(f"job {job_id} already {row.status.value}: there is nothing to cancel")
    if row.status is JobStatus.QUEUED:
        _finish(session, row, JobStatus.CANCELLED, None)
    session.flush()
    return _record(session, row)


def hand_back(session: Session, *, job_id: int, worker: str) -> None:
    """A worker that is stopping gives its running job back: queued and unsent, so another worker's sweep
    sends it again and that worker resumes it from its last checkpoint. Conflict unless `worker` held it."""
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker == worker)
        .values(status=JobStatus.QUEUED, worker=None, lease_expires_at=None, task_id=None, phase=None,
                phase_started_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not taken:
        raise Conflict(f"job {job_id} is not held by {worker}")


def requeue_lapsed(session: Session) -> list[int]:
    """Put running jobs whose lease lapsed (their worker died) back in the queue, unsent.

    One conditional UPDATE, so two sweepers never both take the same job. The lapsed lease is kept: the job
    shows as stalled until a worker takes it again.
    """
    stmt = (
        update(Job)
        .where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
        .values(status=JobStatus.QUEUED, worker=None, task_id=None, phase=None, phase_started_at=None)
        .returning(Job.id)
    )
    return sorted(session.execute(stmt).scalars())


def reserve_unsent(session: Session, *, older_than_seconds: float) -> list[tuple[int, str, str]]:
    """Queued jobs never sent (older than the cut-off): give each a task id to send it with.

    Returns (job id, kind, task id). A sender that fails calls `release_task_id`, so the job stays
    unsent and a later sweep tries again.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    candidates = session.execute(
        select(Job.id, Job.kind).where(Job.status == JobStatus.QUEUED, Job.task_id.is_(None), Job.created_at < cutoff)
        .order_by(Job.id)
    ).all()
    reserved = []
    for job_id, kind in candidates:
        task_id = str(uuid.uuid4())
        taken = session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.task_id.is_(None))
            .values(task_id=task_id)
        ).rowcount
        if taken == 1:
            reserved.append((job_id, kind.value, task_id))
    return reserved


def release_task_id(session: Session, *, job_id: int, task_id: str) -> None:
    """Undo `reserve_unsent` for a job whose task could not be sent."""
    session.execute(update(Job).where(Job.id == job_id, Job.task_id == task_id).values(task_id=None))
