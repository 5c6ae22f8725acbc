"""What every task does around its work: claim the job, hold its lease, record how it ended.

A task is safe to run twice: a finished job is a no-op, a job held by a live lease is a duplicate
delivery (no-op), and a job whose lease lapsed is taken over (the work resumes from its checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from ml.errors import CXRError, TrainingCancelled
from registry.artifacts import LocalArtifactStore
from registry.errors import Conflict
from registry.jobs import Claim, claim_job, finish_job, hand_back
from registry.records import JobRecord
from registry.runs import record_artifact
from worker.context import WorkerContext
from worker.lease import Lease, shutting_down

log = logging.getLogger(__name__)

Work = Callable[[WorkerContext, JobRecord, Lease], None]

MEDIA_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson", ".png": "image/png"}


def run_job(ctx: WorkerContext, job_id: int, device: str, work: Work) -> str:
    """Claim `job_id` and run `work` under its lease; returns the outcome (granted work ends as
    succeeded, cancelled, failed, lost, or handed back when this worker is stopping; otherwise the claim's
    answer: finished, busy, cancelled).

    `work` finishes the job itself when it succeeds (in the same transaction as its results).
    """
    s = ctx.settings
    with ctx.db.session() as session:
        claim = claim_job(session, job_id=job_id, worker=ctx.name, device=device, lease_seconds=s.lease_seconds)
    if claim.claim is not Claim.GRANTED:
        log.info("job %d: %s, nothing to do", job_id, claim.claim.value)
        return claim.claim.value
    job = claim.job
    log.info("job %d (%s %s): attempt %d on %s", job_id, job.kind, job.model, job.attempts, device)
    status, error = "succeeded", None
    with Lease(ctx.db, job_id=job_id, worker=ctx.name, lease_seconds=s.lease_seconds,
               interval=s.heartbeat_seconds) as lease:
        try:
            work(ctx, job, lease)
        except TrainingCancelled:
            status = "handed back" if shutting_down.is_set() and not lease.cancel_requested.is_set() \
                else "cancelled"
        except Exception as exc:  # any failure is recorded on the job for its user
            if not lease.lost.is_set():
                log.exception("job %d failed", job_id)
            status, error = "failed", describe(exc)
    if lease.lost.is_set():
        log.warning("job %d was taken over by another worker; this attempt stops without a result", job_id)
        return "lost"
    if status == "handed back":
        try:
            with ctx.db.session() as session:
                hand_back(session, job_id=job_id, worker=ctx.name)
        except Conflict as exc:
            log.warning("job %d: %s", job_id, exc)
            return "lost"
        log.warning("job %d handed back (this worker is stopping): another worker resumes it from its last "
                    "checkpoint", job_id)
        return status
    if status != "succeeded":
        try:
            with ctx.db.session() as session:
                finish_job(session, job_id=job_id, status=status, error=error, worker=ctx.name)
        except Conflict as exc:
            log.warning("job %d: %s", job_id, exc)
            return "lost"
    log.info("job %d %s", job_id, status)
    return status


def describe(exc: BaseException) -> str:
    """One line a user can act on: library errors say it themselves, others carry their type."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message if isinstance(exc, (CXRError, Conflict)) else f"{type(exc).__name__}: {message}"


def record_run_files(session: Session, store: LocalArtifactStore, *, run_id: int, key: str, folder: Path) -> list[str]:
    """Record the run folder's reports and plots (JSON, JSON lines, PNG) as the run's artifacts."""
    names = []
    for path in sorted(folder.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        stored = store.put_file(path, f"{key}/{path.name}")
        record_artifact(session, run_id=run_id, name=path.name, uri=stored.uri, media_type=media_type,
                        size_bytes=stored.size_bytes, sha256=stored.sha256)
        names.append(path.name)
    return names
