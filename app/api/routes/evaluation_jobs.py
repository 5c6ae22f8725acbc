"""Evaluation jobs: a model version on a dataset split, run by a worker."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.auth import AUTH_ERRORS, TrainKey
from app.api.deps import SessionDep, TasksDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.jobs import EvaluationJobRequest, Job, JobList, JobPage
from app.services.jobs import cancel_job, job_location, list_page, submit_evaluation
from registry.jobs import get_job
from registry.records import MAX_INT

router = APIRouter(prefix="/evaluation-jobs", tags=["evaluation jobs"])

JOB_EXAMPLES = {404: ("not_found", "evaluate job 7 does not exist"),
                409: ("conflict", "job 7 already succeeded")}
SUBMIT_EXAMPLES = {503: ("queue_unavailable", "the task queue is unreachable (connection refused); job 7 is "
                         "saved as queued and will be sent automatically when the queue is back: do not submit "
                         "it again")}
JobId = Annotated[int, Path(ge=1, le=MAX_INT, description="the job's id", examples=[8])]


@router.post("", status_code=202, response_model=Job,
             responses={**AUTH_ERRORS, **error_responses(422, 503, examples=SUBMIT_EXAMPLES)})
def submit(body: EvaluationJobRequest, session: SessionDep, tasks: TasksDep, response: Response,
           caller: TrainKey, viewer: ViewerDep) -> Job:
    """Queue the evaluation of a model version on a dataset split."""
    job = submit_evaluation(session, tasks, body, actor=caller.name)
    response.headers["Location"] = job_location(job)
    return Job.of(job, viewer)


@router.get("", response_model=JobList, responses=error_responses(422))
def list_evaluation_jobs(session: SessionDep, page: Annotated[JobPage, Query()], viewer: ViewerDep) -> JobList:
    """List evaluation jobs, newest first."""
    return list_page(session, kind="evaluate", page=page, viewer=viewer)


@router.get("/{job_id}", response_model=Job, responses=error_responses(404, 422, examples=JOB_EXAMPLES))
def show(job_id: JobId, session: SessionDep, viewer: ViewerDep) -> Job:
    """Show an evaluation job and its metrics."""
    return Job.of(get_job(session, job_id=job_id, kind="evaluate"), viewer)


@router.post("/{job_id}/cancel", response_model=Job,
             responses={**AUTH_ERRORS, **error_responses(404, 409, 422, examples=JOB_EXAMPLES)})
def cancel(job_id: JobId, session: SessionDep, caller: TrainKey, viewer: ViewerDep) -> Job:
    """Cancel an evaluation job that has not started."""
    return Job.of(cancel_job(session, job_id=job_id, kind="evaluate", actor=caller.name), viewer)
