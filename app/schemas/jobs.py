"""Training and evaluation jobs as the API takes and shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.text import CallerText
from ml.config import TrainParams, TTAField
from registry.records import MAX_INT, JobRecord
from registry.versions import NAME_PATTERN

if TYPE_CHECKING:
    from app.schemas.viewer import Viewer

# `cancelling`: running, with a cancel accepted; it ends `cancelled` (never `succeeded`) within a second or so
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]


def shown_status(job: JobRecord) -> str:
    return "cancelling" if job.status == "running" and job.cancel_requested else job.status


def is_stalled(job: JobRecord, now: datetime) -> bool:
    """Its lease lapsed: running without a live worker, or queued again after its worker was lost (the
    lapsed lease is kept until a worker claims it)."""
    lapsed = job.lease_expires_at is not None and job.lease_expires_at <= now
    return lapsed and job.status in ("running", "queued")


_EXAMPLE_JOB: dict[str, Any] = {
    "id": 7, "kind": "train", "status": "running", "model": "simple_cnn", "dataset": "pneumoniamnist",
    "register_as": "pneumoniamnist-simple_cnn", "params": {"epochs": 3, "batch_size": 64},
    "progress": {"phase": "training", "epoch": 1, "epochs": 3, "step": 20, "steps": 73, "fraction": 0.4,
                 "elapsed_s": 95.2, "eta_s": 160.4},
    "heartbeat_at": "2026-01-05T10:01:35Z", "lease_expires_at": "2026-01-05T10:03:35Z", "stalled": False,
    "stop_reason": None,
    "latest_metrics": {"train": {"loss": 0.31}, "val": {"loss": 0.28, "mean_auroc": 0.95}},
    "error_code": None, "error": None, "worker": None, "device": "cpu", "attempts": 1, "cancel_requested": False,
    "created_at": "2026-01-05T10:00:00Z", "started_at": "2026-01-05T10:00:01Z", "finished_at": None,
    "run_id": 7, "model_version": None, "split": None, "result": {},
}


Phase = Literal["preparing", "training", "evaluating", "publishing"]

# The share of a training job's progress its epochs make; the final evaluation and publishing make the rest, so
# `fraction` reaches 1 only when the job succeeded.
TRAINING_SHARE = 0.95
PHASE_FRACTION = {"evaluating": TRAINING_SHARE, "publishing": 0.98}


class Progress(BaseModel):
    phase: Phase | None = Field(None, description="what the worker is doing, while the job runs: preparing "
                                "(data, model), training, evaluating (the best epoch, on val and test), publishing")
    epoch: int = Field(description="epochs finished, counting from 1 (the one in progress is epoch + 1)")
    epochs: int = Field(description="epochs requested (0 for evaluation jobs)")
    step: int = Field(description="steps done in the epoch in progress")
    steps: int = Field(description="steps per epoch")
    fraction: float = Field(ge=0, le=1, description="overall progress; epochs make the first 95%, the final "
                            "evaluation and publishing the rest; 1 only when the job succeeded")
    elapsed_s: float | None = Field(None, description="seconds since it started, until it ended")
    eta_s: float | None = Field(None, description="seconds of training left at the pace of this attempt so far "
                                "(the final evaluation not included); null when unknown")

    @classmethod
    def of(cls, job: JobRecord, now: datetime) -> Progress:
        running = job.status == "running"
        phase = job.phase if running else None
        trained = 0.0
        if job.epochs:
            trained = (job.epoch + (job.step / job.steps if job.steps else 0.0)) / job.epochs
        if job.status == "succeeded":
            fraction = 1.0
        elif job.kind == "evaluate":
            fraction = PHASE_FRACTION.get(phase or "", 0.0)
        else:
            fraction = max(PHASE_FRACTION.get(phase or "", 0.0), TRAINING_SHARE * min(1.0, trained))
        end = job.finished_at or now
        elapsed = (end - job.started_at).total_seconds() if job.started_at else None
        return cls(phase=phase, epoch=job.epoch, epochs=job.epochs, step=job.step, steps=job.steps,  # type: ignore[arg-type]
                   fraction=round(fraction, 4), elapsed_s=round(elapsed, 1) if elapsed is not None else None,
                   eta_s=_eta(job, now) if phase == "training" else None)


def _eta(job: JobRecord, now: datetime) -> float | None:
    """Steps left over the pace of this attempt's training phase (steps done since it began)."""
    if not (job.steps and job.epochs and job.phase_started_at):
        return None
    done = (job.epoch - job.start_epoch) * job.steps + job.step
    seconds = (now - job.phase_started_at).total_seconds()
    if done <= 0 or seconds <= 0:
        return None
    left = max(0, (job.epochs - job.epoch) * job.steps - job.step)
    return round(left * seconds / done, 1)


class VersionRef(BaseModel):
    name: str
    version: int


class JobSummary(BaseModel):
    """A job as listings show it: everything but its parameters (GET the job for those)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {k: v for k, v in _EXAMPLE_JOB.items() if k != "params"}]})

    id: int
    kind: Literal["train", "evaluate"]
    status: JobStatus
    model: str = Field(description="architecture (training) or model version reference (evaluation)")
    dataset: str = Field(description="registered dataset name")
    register_as: str | None = Field(description="registered model name the trained model becomes a version of")
    progress: Progress
    heartbeat_at: datetime | None = Field(None, description="when its worker last said it was alive")
    lease_expires_at: datetime | None = Field(
        None, description="when its worker's claim lapses unless renewed; a job whose lease lapsed is stalled")
    stalled: bool = Field(False, description="its worker stopped renewing the lease (presumed dead): true until "
                                             "another worker takes it over and resumes it from its checkpoint")
    stop_reason: str | None = Field(None, description="why it ended without a result (cancelled or failed), "
                                                      "for a person")
    latest_metrics: dict[str, Any] = Field(description="the last finished epoch's metrics per split")
    error_code: str | None = Field(
        None, description="why it failed, as a short stable code: dataset_error, invalid_config, model_error, "
                          "image_error, job_error, integrity_failure, not_found, conflict, out_of_memory, "
                          "internal_error")
    error: str | None = Field(description="why it failed, for a person (the traceback is in the worker's log)")
    worker: str | None = Field(description="the worker process holding (or that last held) the job, as host:pid; "
                                           "shown to admin keys only")
    device: str | None = Field(description="the device it runs on: cpu, or cuda with the GPU's name")
    attempts: int = Field(description="deliveries that started it; more than one after a worker was lost")
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_id: int | None
    model_version: VersionRef | None = Field(
        description="training: the version it produced; evaluation: the version evaluated")
    split: str | None = Field(None, description="evaluation jobs: the split evaluated")
    result: dict[str, Any] = Field(default_factory=dict, description="headline results once it succeeded")

    @classmethod
    def fields_of(cls, job: JobRecord, viewer: Viewer) -> dict[str, Any]:
        version, now = job.model_version, datetime.now(UTC)
        return {
            "id": job.id, "kind": job.kind, "status": shown_status(job), "model": job.model,
            "dataset": job.dataset_name, "register_as": job.register_as, "progress": Progress.of(job, now),
            "heartbeat_at": job.heartbeat_at, "lease_expires_at": job.lease_expires_at,
            "stalled": is_stalled(job, now), "stop_reason": viewer.text(job.stop_reason) if job.stop_reason else None,
            "latest_metrics": job.latest_metrics, "error_code": job.error_code,
            "error": viewer.text(job.error) if job.error else None, "worker": viewer.worker(job.worker),
            "device": job.device, "attempts": job.attempts, "cancel_requested": job.cancel_requested,
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "run_id": job.run_id,
            "model_version": VersionRef(name=version.name, version=version.version) if version else None,
            "split": job.split, "result": job.result,
        }

    @classmethod
    def of(cls, job: JobRecord, viewer: Viewer) -> JobSummary:
        return cls(**cls.fields_of(job, viewer))


class Job(JobSummary):
    """A job and everything known about it, its parameters included; the web page shows these fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_JOB]})

    params: dict[str, Any] = Field(description="the parameters as submitted (defaults apply to the rest)")

    @classmethod
    def of(cls, job: JobRecord, viewer: Viewer) -> Job:
        return cls(**cls.fields_of(job, viewer), params=viewer.value(job.params))


class JobList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [{k: v for k, v in _EXAMPLE_JOB.items() if k != "params"}], "total": 1, "limit": 50,
         "offset": 0}]})

    items: list[JobSummary] = Field(description="job summaries: GET a job for its parameters")
    total: int = Field(description="jobs matching the filter, on every page")
    limit: int
    offset: int


class JobPage(CallerText):
    """Query parameters of a job list."""

    status: JobStatus | None = Field(None, description="only jobs with this status")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_INT)


class TrainingJobRequest(CallerText):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "simple_cnn", "dataset": "pneumoniamnist", "params": {"epochs": 3, "batch_size": 64}},
        {"model": "densenet121", "dataset": "chestmnist-nih1000", "params": {"epochs": 10, "lr": 3e-4},
         "register_as": "chest14"},
    ]})

    model: str = Field(max_length=100, description="architecture, one of GET /models' architectures (e.g. simple_cnn)")
    dataset: str = Field(pattern=f"^{NAME_PATTERN}$", description="a registered dataset's name (GET /datasets)")
    params: TrainParams = Field(default_factory=TrainParams, description="training parameters")
    register_as: str | None = Field(
        None, pattern=f"^{NAME_PATTERN}$",
        description="model name the result becomes a new version of; default `<dataset>-<model>`. "
                    "Name an existing model (e.g. `pneumonia`) to add a version to it (its labels must match).")


class EvaluationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(128, ge=1, le=4096)
    max_samples: int | None = Field(None, ge=1, le=MAX_INT, description="evaluate only this many rows (quick checks)")
    tta: TTAField | None = Field(None, description="test-time views to average: 'none', 'hflip' (true: the "
                                       "mirror) or 'crops'; default the model's own")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class EvaluationJobRequest(CallerText):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "pneumonia@production", "dataset": "pneumoniamnist", "split": "test"},
        {"model": "pneumoniamnist-simple_cnn:2", "dataset": "pneumoniamnist", "split": "val",
         "params": {"tta": True, "max_samples": 200}},
    ]})

    model: str = Field(max_length=210,
                       description="model reference: name (its production alias), name@alias or name:version")
    dataset: str = Field(pattern=f"^{NAME_PATTERN}$", description="a registered dataset's name with the model's labels")
    split: str = Field("test", max_length=50, description="the dataset split to evaluate on")
    params: EvaluationParams = Field(default_factory=EvaluationParams)
