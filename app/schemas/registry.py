"""Datasets, runs and model versions as the API shows them (`ModelQuality`, their `quality`, is defined in
`app.schemas.quality` and re-exported here)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

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
)
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
