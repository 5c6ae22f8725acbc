"""What every task does around its work: claim the job, hold its lease, record how it ended.

A task is safe to run twice: a finished job is a no-op, a job held by a live lease is a duplicate
delivery (no-op), and a job whose lease lapsed is taken over (the work resumes from its checkpoint).

A failed job records a short code and a message for its user (`describe`); the traceback goes to this
worker's log only, and the message shows server paths relative to the data roots and artifact store,
since anyone may read a job.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from ml.errors import ConfigError, CXRError, DatasetError, ImageError, ModelError, TrainingCancelled
from ml.evaluation.plots import save_partial_plots
from registry.artifacts import LocalArtifactStore
from registry.errors import CancelRequested, Conflict, IntegrityFailure, NotFound
from registry.jobs import Claim, claim_job, finish_job, hand_back
from registry.paths import PathView
from registry.records import JobRecord
from registry.runs import finish_run, record_artifact, run_checkpoints
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
    status, failure = "succeeded", None
    with Lease(ctx.db, job_id=job_id, worker=ctx.name, lease_seconds=s.lease_seconds,
               interval=s.heartbeat_seconds, poll=s.cancel_poll_seconds) as lease:
        try:
            work(ctx, job, lease)
        except TrainingCancelled:
            status = "handed back" if shutting_down.is_set() and not lease.cancel_requested.is_set() \
                else "cancelled"
        except CancelRequested:  # the cancel was accepted before the result could be recorded
            status = "cancelled"
        except Exception as exc:  # any failure is recorded on the job for its user
            if not lease.lost.is_set():
                log.exception("job %d failed", job_id)
            status = "failed"
            failure = describe(exc, ctx.paths)
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
                code, message = failure or (None, None)
                ended = finish_job(session, job_id=job_id, status=status, error=message, error_code=code,
                                   worker=ctx.name)
        except Conflict as exc:
            log.warning("job %d: %s", job_id, exc)
            return "lost"
        try:
            with ctx.db.session() as session:
                keep_partial_run(ctx, session, ended)
        except Exception:  # the outcome is recorded; the partial files are a bonus
            log.exception("job %d: keeping what its finished epochs made failed", job_id)
    log.info("job %d %s", job_id, status)
    return status


def keep_partial_run(ctx: WorkerContext, session: Session, job: JobRecord) -> None:
    """A training run that stopped before its end keeps what its finished epochs made: `metrics.jsonl`, the
    training curves (drawn now) and `config.json` become its artifacts beside the best and last checkpoints
    already recorded, and its report says why it stopped and which epoch was best."""
    if job.kind != "train" or job.run_id is None:
        return
    key, folder = ctx.job_folder(job.id)
    if folder.is_dir():
        save_partial_plots(folder)
        record_run_files(session, ctx.store, run_id=job.run_id, key=key, folder=folder, paths=ctx.paths)
    best = next((c.epoch for c in run_checkpoints(session, run_id=job.run_id) if c.kind == "best"), None)
    report = {"stop_reason": job.stop_reason, "epochs_run": job.epoch, "best_epoch": best}
    finish_run(session, run_id=job.run_id, status=job.status, best_epoch=best, report=report)


# library and registry errors say what is wrong themselves; their code names the kind of problem
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (DatasetError, "dataset_error"), (ConfigError, "invalid_config"), (ModelError, "model_error"),
    (ImageError, "image_error"), (CXRError, "job_error"), (IntegrityFailure, "integrity_failure"),
    (NotFound, "not_found"),
)
MAX_MESSAGE = 500


def describe(exc: BaseException, paths: PathView) -> tuple[str, str]:
    """A failure as (code, message) for the job's user: one line, no traceback, no server paths.

    Errors the code raises on purpose keep their message; out-of-memory says what to change; anything
    else is `internal_error` with only its type: its text may quote internals, and the log has it.
    """
    for kind, code in _CODES:
        if isinstance(exc, kind):
            message = paths.text(" ".join(str(exc).split()) or type(exc).__name__)
            return code, message if len(message) <= MAX_MESSAGE else f"{message[:MAX_MESSAGE]}..."
    if isinstance(exc, Conflict):  # its text names the workers involved
        return "conflict", "another worker took the job over, or it changed while this one ran"
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch.cuda's
        return "out_of_memory", "the worker ran out of memory: try a smaller batch_size or input_size"
    return "internal_error", f"the worker failed unexpectedly ({type(exc).__name__}); its log has the details"


def record_run_files(session: Session, store: LocalArtifactStore, *, run_id: int, key: str, folder: Path,
                     paths: PathView) -> list[str]:
    """Record the run folder's reports and plots (JSON, JSON lines, PNG) as the run's artifacts.

    Anyone may download them, so the JSON reports first have their server paths (the data root, the
    checkpoint evaluated) rewritten relative to the data roots and store; the run row keeps the real ones.
    """
    names = []
    for path in sorted(folder.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        if path.suffix == ".json":
            _show_paths(path, paths)
        stored = store.put_file(path, f"{key}/{path.name}")
        record_artifact(session, run_id=run_id, name=path.name, uri=stored.uri, media_type=media_type,
                        size_bytes=stored.size_bytes, sha256=stored.sha256)
        names.append(path.name)
    return names


def _show_paths(path: Path, paths: PathView) -> None:
    """Rewrite a JSON file with its path strings shown by `paths` (atomically; untouched if none)."""
    data = json.loads(path.read_text())
    public = paths.value(data)
    if public != data:
        tmp = path.with_name(f".{path.name}.public")
        tmp.write_text(json.dumps(public, indent=2) + "\n")
        os.replace(tmp, path)
