"""Datasets, runs and model versions as the API shows them (`ModelQuality`, their `quality`, is defined in
`app.schemas.quality` and re-exported here)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.jobs import VersionRef
from app.schemas.quality import ModelQuality
from app.schemas.serving import ServingInfo
from app.schemas.text import CallerText
from registry.records import (
    MAX_INT,
    ArtifactRecord,
    CheckpointRecord,
    DatasetRecord,
    MetricRecord,
    ModelVersionRecord,
    RunRecord,
)
from registry.records import VersionRef as VersionRefRecord
from registry.tables import JobStatus
from registry.versions import NAME_PATTERN

if TYPE_CHECKING:
    from app.schemas.viewer import Viewer

_RELATIVE = " (relative to its data root; absolute for admin keys)"


class DatasetRequest(CallerText):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "pneumoniamnist", "kind": "pneumoniamnist", "path": "pneumoniamnist/pneumoniamnist.npz"},
        {"name": "kermany", "kind": "folder", "path": "kermany-sample",
         "options": {"split": "stratified", "fractions": {"train": 0.5, "val": 0.25, "test": 0.25}},
         "description": "Kermany pediatric images"},
    ]})

    name: str = Field(pattern=f"^{NAME_PATTERN}$", description="the name jobs refer to it by")
    kind: str = Field(max_length=100,
                      description="the dataset adapter (e.g. pneumoniamnist, chestmnist, folder, nih, chexpert)")
    path: str = Field(max_length=4096,
                      description="a file or folder inside a configured data root, relative to it (or absolute)")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="the adapter's options (`cxr datasets` lists the adapters); unknown keys and wrong types "
                    "are refused. Options naming a file (MedMNIST `file`, NIH `csv` and `split_dir`) are "
                    "relative to `path`'s folder or absolute, and must lie inside a data root like `path`.")
    description: str = Field("", max_length=2000)


_EXAMPLE_DATASET = {
    "id": 1, "name": "pneumoniamnist", "kind": "pneumoniamnist", "location": "pneumoniamnist/pneumoniamnist.npz",
    "options": {}, "labels": ["Pneumonia"], "task": "binary", "splits": {"train": 4708, "val": 524, "test": 624},
    "description": "PneumoniaMNIST 28 px", "created_at": "2026-01-05T10:00:00Z"}
_EXAMPLE_CHECKPOINT = {"kind": "final", "uri": "runs/7/model.pt", "size_bytes": 382119,
                       "sha256": "9f2c...", "epoch": 1}
_EXAMPLE_VERSION = {
    "name": "pneumonia", "version": 2, "architecture": "simple_cnn", "aliases": ["production"],
    "labels": ["Pneumonia"], "task": "binary", "thresholds": [0.42], "metrics": {"test": {"mean_auroc": 0.95}},
    "run_id": 7, "description": "simple_cnn trained on pneumoniamnist by job 7", "created_at": "2026-01-05T10:03:00Z",
    "checkpoint": _EXAMPLE_CHECKPOINT}


class Dataset(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_DATASET]})

    id: int
    name: str
    kind: str
    location: str = Field(description="the file or folder it was registered with" + _RELATIVE)
    options: dict[str, Any] = Field(description="the adapter's options; paths in them" + _RELATIVE)
    labels: list[str]
    task: str
    splits: dict[str, int] = Field(description="rows per split")
    description: str
    created_at: datetime

    @classmethod
    def of(cls, record: DatasetRecord, viewer: Viewer) -> Dataset:
        return cls(id=record.id, name=record.name, kind=record.kind, location=viewer.location(record.location),
                   options=viewer.value(record.options), labels=list(record.labels), task=record.task,
                   splits=record.splits, description=record.description, created_at=record.created_at)


class DatasetList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_EXAMPLE_DATASET]}]})

    items: list[Dataset]


class MetricPoint(BaseModel):
    epoch: int
    value: float | None


class Checkpoint(BaseModel):
    kind: str = Field(description="last, best or final")
    uri: str = Field(description="where it is stored: its key in the artifact store (the file:// URI for admin "
                                 "keys)")
    size_bytes: int
    sha256: str
    epoch: int | None

    @classmethod
    def of(cls, record: CheckpointRecord, viewer: Viewer) -> Checkpoint:
        return cls(kind=record.kind, uri=viewer.uri(record.uri), size_bytes=record.size_bytes, sha256=record.sha256,
                   epoch=record.epoch)


class Artifact(BaseModel):
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    url: str = Field(description="where to download it")

    @classmethod
    def of(cls, run_id: int, record: ArtifactRecord) -> Artifact:
        return cls(name=record.name, media_type=record.media_type, size_bytes=record.size_bytes,
                   sha256=record.sha256, url=f"/runs/{run_id}/artifacts/{record.name}")


class Run(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 7, "job_id": 7, "model": "simple_cnn", "dataset": "pneumoniamnist", "status": "succeeded",
        "device": "cpu", "config": {"model": "simple_cnn", "params": {"epochs": 2}}, "best_epoch": 1,
        "resumed_from_epoch": None, "report": {"splits": {"test": {"mean_auroc": 0.95}}},
        "started_at": "2026-01-05T10:00:01Z", "finished_at": "2026-01-05T10:03:00Z",
        "metrics": {"val": {"loss": [{"epoch": 0, "value": 0.4}, {"epoch": 1, "value": 0.3}]}},
        "checkpoints": [_EXAMPLE_CHECKPOINT],
        "artifacts": [{"name": "report.json", "media_type": "application/json", "size_bytes": 17947,
                       "sha256": "41ab...", "url": "/runs/7/artifacts/report.json"}]}]})

    id: int
    job_id: int
    model: str
    dataset: str
    status: str
    device: str | None
    config: dict[str, Any] = Field(description="what the run was given; paths in it" + _RELATIVE)
    best_epoch: int | None
    resumed_from_epoch: int | None = Field(description="set when a later delivery resumed the run from a checkpoint")
    report: dict[str, Any] = Field(description="headline evaluation metrics and thresholds")
    started_at: datetime
    finished_at: datetime | None
    metrics: dict[str, dict[str, list[MetricPoint]]] = Field(description="split -> metric -> value per epoch")
    checkpoints: list[Checkpoint]
    artifacts: list[Artifact]


KEY_METRICS = (("train", "loss"), ("val", "loss"), ("val", "mean_auroc"))

_EXAMPLE_SUMMARY = {
    "id": 7, "job_id": 7, "model": "simple_cnn", "dataset": "pneumoniamnist", "status": "succeeded", "device": "cpu",
    "best_epoch": 2, "epochs": 3, "started_at": "2026-01-05T10:00:01Z", "finished_at": "2026-01-05T10:03:00Z",
    "key_metrics": {"train.loss": 0.21, "val.loss": 0.25, "val.mean_auroc": 0.95, "test.mean_auroc": 0.94},
    "model_version": {"name": "pneumoniamnist-simple_cnn", "version": 2}}


class RunSummary(BaseModel):
    """A run as lists show it: what it trained, how it went, and its headline metrics."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_SUMMARY]})

    id: int
    job_id: int
    model: str = Field(description="the architecture trained")
    dataset: str
    status: str
    device: str | None
    best_epoch: int | None
    epochs: int = Field(description="epochs with recorded metrics")
    started_at: datetime
    finished_at: datetime | None
    key_metrics: dict[str, float | None] = Field(
        description="`train.loss`, `val.loss` and `val.mean_auroc` at the best epoch (the last one until a "
                    "best is known), and `test.mean_auroc` from the final report when there is one")
    model_version: VersionRef | None = Field(description="the model version the run produced, if any")

    @classmethod
    def of(cls, run: RunRecord, dataset: str, metrics: list[MetricRecord],
           version: VersionRefRecord | None) -> RunSummary:
        epochs = sorted({m.epoch for m in metrics})
        at = run.best_epoch if run.best_epoch in epochs else (epochs[-1] if epochs else None)
        values = {(m.split, m.name): m.value for m in metrics if m.epoch == at}
        key = {f"{split}.{name}": values.get((split, name)) for split, name in KEY_METRICS}
        test = (run.report.get("splits") or {}).get("test") or {}
        key["test.mean_auroc"] = test.get("mean_auroc") if isinstance(test.get("mean_auroc"), (int, float)) else None
        return cls(id=run.id, job_id=run.job_id, model=run.model, dataset=dataset, status=run.status,
                   device=run.device, best_epoch=run.best_epoch, epochs=len(epochs), started_at=run.started_at,
                   finished_at=run.finished_at, key_metrics=key,
                   model_version=VersionRef(name=version.name, version=version.version) if version else None)


RunStatus = Literal[tuple(s.value for s in JobStatus)]  # type: ignore[valid-type]


class RunPage(CallerText):
    """Query parameters of the run list."""

    model: str | None = Field(None, max_length=100, description="only runs of this architecture",
                              examples=["simple_cnn"])
    dataset: str | None = Field(None, max_length=100, description="only runs on this registered dataset",
                                examples=["pneumoniamnist"])
    status: RunStatus | None = Field(None, description="only runs with this status")  # type: ignore[valid-type]
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_INT)


class RunList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_EXAMPLE_SUMMARY], "total": 1, "limit": 50, "offset": 0}]})

    items: list[RunSummary]
    total: int = Field(description="runs matching the filter, on every page")
    limit: int
    offset: int


def metric_series(rows: list[MetricRecord]) -> dict[str, dict[str, list[MetricPoint]]]:
    series: dict[str, dict[str, list[MetricPoint]]] = {}
    for m in rows:  # ordered by epoch
        series.setdefault(m.split, {}).setdefault(m.name, []).append(MetricPoint(epoch=m.epoch, value=m.value))
    return series


class ModelVersion(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_VERSION]})

    name: str
    version: int
    architecture: str
    aliases: list[str]
    labels: list[str]
    task: str
    thresholds: list[float]
    metrics: dict[str, Any]
    run_id: int | None = Field(description="the training run it came from; null for imported models")
    description: str
    created_at: datetime
    checkpoint: Checkpoint | None
    quality: ModelQuality = Field(description="its stored test evaluation (null fields when unknown)")
    serving: ServingInfo | None = Field(None, description="runtime and batching, when loaded for serving")

    @classmethod
    def of(cls, record: ModelVersionRecord, viewer: Viewer, serving: ServingInfo | None = None) -> ModelVersion:
        return cls(name=record.name, version=record.version, architecture=record.architecture,
                   aliases=list(record.aliases), labels=record.labels, task=record.task,
                   thresholds=record.thresholds, metrics=record.metrics, run_id=record.run_id,
                   description=record.description, created_at=record.created_at,
                   checkpoint=Checkpoint.of(record.checkpoint, viewer) if record.checkpoint else None,
                   quality=ModelQuality.of(record.metrics), serving=serving)


class ModelVersionList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_EXAMPLE_VERSION]}]})

    items: list[ModelVersion]


class AliasRequest(CallerText):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(ge=1, le=MAX_INT, description="the version the alias should point at")
