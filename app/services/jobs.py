"""Submitting jobs: validate against the registry and the library, write the row, then send the task.

Nothing is written for a request that fails validation. The row is committed before its task is sent;
if the broker is down the answer is 503 and the row stays queued and unsent, for a worker's sweep.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app.schemas.jobs import EvaluationJobRequest, JobList, JobPage, JobSummary, TrainingJobRequest
from app.services.errors import InvalidField, JobNotSent
from app.tasks import QueueUnavailable, TaskQueue
from ml.models import list_models
from ml.models.options import ModelOptionError, check_model_kwargs
from registry.audit import record_event
from registry.datasets import find_dataset, list_datasets
from registry.errors import NotFound
from registry.jobs import create_job, get_job, list_jobs, request_cancel, set_task_id
from registry.records import DatasetRecord, JobRecord
from registry.versions import default_model_name, list_versions, resolve

if TYPE_CHECKING:
    from app.schemas.viewer import Viewer

JOB_PATHS = {"train": "/training-jobs", "evaluate": "/evaluation-jobs"}


def job_location(job: JobRecord) -> str:
    return f"{JOB_PATHS[job.kind]}/{job.id}"


# The whole `params` object of a job, as stored and shown: every field is bounded, and so is the total
# (a few hundred bytes is usual; model_kwargs cannot make it megabytes).
MAX_PARAMS_BYTES = 8192


def submit_training(session: Session, tasks: TaskQueue, request: TrainingJobRequest, *, actor: str) -> JobRecord:
    if request.model not in list_models():
        raise InvalidField("model", f"unknown model '{request.model}'; known: {', '.join(list_models())}")
    p = request.params
    params = p.model_dump(mode="json", exclude_unset=True)
    size = len(json.dumps(params, separators=(",", ":")))
    if size > MAX_PARAMS_BYTES:
        raise InvalidField("params", f"{size} bytes of parameters; at most {MAX_PARAMS_BYTES} are taken")
    try:
        check_model_kwargs(request.model, dict(p.model_kwargs), input_size=p.input_size, in_chans=p.in_chans)
    except ModelOptionError as exc:
        raise InvalidField(f"params.model_kwargs.{exc.field}" if exc.field else "params.model_kwargs",
                           exc.message) from None
    dataset = _dataset(session, request.dataset)
    if p.pretrained_path is not None:
        raise InvalidField("params.pretrained_path", "cannot be set through the API: workers read pretrained weights "
                                                "from their own cache (set pretrained: true)")
    for field in ("train_split", "val_split"):
        split = getattr(p, field)
        if split not in dataset.splits:
            raise InvalidField(f"params.{field}", f"dataset '{dataset.name}' has no split '{split}' "
                                             f"(splits: {', '.join(dataset.splits)})")
    name = request.register_as or default_model_name(dataset.name, request.model)
    versions = list_versions(session, name=name)
    if versions and versions[-1].labels != dataset.labels:
        raise InvalidField("register_as", f"model '{name}' predicts {versions[-1].labels}, dataset '{dataset.name}' has "
                                     f"{dataset.labels}: choose another name")
    job = create_job(session, kind="train", model=request.model, dataset_id=dataset.id,
                     params=params, register_as=name, epochs=p.epochs,
                     submitted_by=actor)
    return _send(session, tasks, job)


def submit_evaluation(session: Session, tasks: TaskQueue, request: EvaluationJobRequest, *,
                      actor: str) -> JobRecord:
    try:
        version = resolve(session, request.model)
    except (ValueError, NotFound) as exc:
        raise InvalidField("model", str(exc)) from None
    dataset = _dataset(session, request.dataset)
    if request.split not in dataset.splits:
        raise InvalidField("split", f"dataset '{dataset.name}' has no split '{request.split}' "
                               f"(splits: {', '.join(dataset.splits)})")
    if dataset.labels != version.labels:
        raise InvalidField("dataset", f"dataset '{dataset.name}' has labels {dataset.labels}, model {version.ref} "
                                 f"predicts {version.labels}")
    job = create_job(session, kind="evaluate", model=version.ref, dataset_id=dataset.id,
                     params=request.params.model_dump(mode="json", exclude_unset=True), model_version_id=version.id,
                     split=request.split, submitted_by=actor)
    return _send(session, tasks, job)


def _dataset(session: Session, name: str) -> DatasetRecord:
    dataset = find_dataset(session, name=name)
    if dataset is None:
        known = ", ".join(d.name for d in list_datasets(session)) or "none (POST /datasets)"
        raise InvalidField("dataset", f"no dataset named '{name}' is registered; known: {known}")
    return dataset


def cancel_job(session: Session, *, job_id: int, kind: str, actor: str) -> JobRecord:
    job = request_cancel(session, job_id=job_id, kind=kind)
    record_event(session, actor=actor, action="job.cancelled", target=job_location(job),
                 details={"status": job.status})
    return job


def _send(session: Session, tasks: TaskQueue, job: JobRecord) -> JobRecord:
    record_event(session, actor=job.submitted_by or "", action="job.submitted", target=job_location(job),
                 details={"kind": job.kind, "model": job.model, "dataset": job.dataset_name})
    session.commit()  # the row (and its audit event) exists before its task does
    try:
        task_id = tasks.send(job.kind, job.id)
    except QueueUnavailable as exc:
        raise JobNotSent(
            f"the task queue is unreachable ({exc}); job {job.id} is saved as queued and will be sent "
            "automatically when the queue is back: do not submit it again",
            job_id=job.id, location=job_location(job),
        ) from None
    set_task_id(session, job_id=job.id, task_id=task_id)
    session.commit()
    return get_job(session, job_id=job.id)


def list_page(session: Session, *, kind: str, page: JobPage, viewer: Viewer) -> JobList:
    jobs, total = list_jobs(session, kind=kind, status=page.status, limit=page.limit, offset=page.offset)
    return JobList(items=[JobSummary.of(j, viewer) for j in jobs], total=total, limit=page.limit, offset=page.offset)
