"""Training jobs: submit, list, show, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.auth import AUTH_ERRORS, TrainKey
from app.api.deps import SessionDep, TasksDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.jobs import Job, JobList, JobPage, TrainingJobRequest
from app.services.jobs import cancel_job, job_location, list_page, submit_training
from registry.jobs import get_job
from registry.records import MAX_INT

router = APIRouter(prefix="/training-jobs", tags=["training jobs"])

JOB_EXAMPLES = {404: ("not_found", "train job 7 does not exist"),
                409: ("conflict", "job 7 already succeeded")}
SUBMIT_EXAMPLES = {503: ("queue_unavailable", "the task queue is unreachable (connection refused); job 7 is "
                         "saved as queued and will be sent automatically when the queue is back: do not submit "
                         "it again")}
JobId = Annotated[int, Path(ge=1, le=MAX_INT, description="the job's id", examples=[7])]


@router.post("", status_code=202, response_model=Job,
             responses={**AUTH_ERRORS, **error_responses(422, 503, examples=SUBMIT_EXAMPLES)})
def submit(body: TrainingJobRequest, session: SessionDep, tasks: TasksDep, response: Response,
           caller: TrainKey, viewer: ViewerDep) -> Job:
    """Queue a training job."""
    job = submit_training(session, tasks, body, actor=caller.name)
    response.headers["Location"] = job_location(job)
    return Job.of(job, viewer)


@router.get("", response_model=JobList, responses=error_responses(422))
def list_training_jobs(session: SessionDep, page: Annotated[JobPage, Query()], viewer: ViewerDep) -> JobList:
    """List training jobs, newest first."""
    return list_page(session, kind="train", page=page, viewer=viewer)


@router.get("/{job_id}", response_model=Job, responses=error_responses(404, 422, examples=JOB_EXAMPLES))
def show(job_id: JobId, session: SessionDep, viewer: ViewerDep) -> Job:
    """Show a training job's status, progress, metrics and results."""
    return Job.of(get_job(session, job_id=job_id, kind="train"), viewer)


@router.post("/{job_id}/cancel", response_model=Job,
             responses={**AUTH_ERRORS, **error_responses(404, 409, 422, examples=JOB_EXAMPLES)})
def cancel(job_id: JobId, session: SessionDep, caller: TrainKey, viewer: ViewerDep) -> Job:
    """Cancel a training job."""
    return Job.of(cancel_job(session, job_id=job_id, kind="train", actor=caller.name), viewer)
