"""Training and evaluation jobs as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.text import CallerText
from ml.config import TrainParams
from registry.records import MAX_INT, JobRecord
from registry.versions import NAME_PATTERN

if TYPE_CHECKING:
    from app.schemas.viewer import Viewer

# `cancelling`: running, with a cancel accepted; it ends `cancelled` (never `succeeded`) within a second or so
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]


def shown_status(job: JobRecord) -> str:
    return "cancelling" if job.status == "running" and job.cancel_requested else job.status

_EXAMPLE_JOB: dict[str, Any] = {
    "id": 7, "kind": "train", "status": "running", "model": "simple_cnn", "dataset": "pneumoniamnist",
    "register_as": "pneumoniamnist-simple_cnn", "params": {"epochs": 3, "batch_size": 64},
    "progress": {"epoch": 1, "epochs": 3, "step": 20, "steps": 73, "fraction": 0.42},
    "latest_metrics": {"train": {"loss": 0.31}, "val": {"loss": 0.28, "mean_auroc": 0.95}},
    "error_code": None, "error": None, "worker": None, "device": "cpu", "attempts": 1, "cancel_requested": False,
    "created_at": "2026-01-05T10:00:00Z", "started_at": "2026-01-05T10:00:01Z", "finished_at": None,
    "run_id": 7, "model_version": None, "split": None, "result": {},
}


class Progress(BaseModel):
    epoch: int = Field(description="epochs completed")
    epochs: int = Field(description="epochs requested (0 for evaluation jobs)")
    step: int = Field(description="steps done in the current epoch")
    steps: int = Field(description="steps per epoch")
    fraction: float = Field(ge=0, le=1, description="overall progress, 1 when the job succeeded")

    @classmethod
    def of(cls, job: JobRecord) -> Progress:
        if job.status == "succeeded":
            fraction = 1.0
        elif job.epochs and job.steps:
            fraction = min(1.0, (job.epoch + job.step / job.steps) / job.epochs)
        else:
            fraction = min(1.0, job.epoch / job.epochs) if job.epochs else 0.0
        return cls(epoch=job.epoch, epochs=job.epochs, step=job.step, steps=job.steps, fraction=round(fraction, 4))


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
        version = job.model_version
        return {
            "id": job.id, "kind": job.kind, "status": shown_status(job), "model": job.model,
            "dataset": job.dataset_name, "register_as": job.register_as, "progress": Progress.of(job),
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
    tta: bool = Field(False, description="average with the mirrored image")
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
