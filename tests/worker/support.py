"""Helpers for the worker tests: a worker context on temporary files, and quick training jobs."""

from __future__ import annotations

from pathlib import Path

from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.jobs import create_job
from registry.records import DatasetRecord
from worker.context import WorkerContext
from worker.settings import WorkerSettings

QUICK = {"epochs": 2, "batch_size": 32, "max_train_samples": 128, "max_eval_samples": 96, "lr": 2e-3,
         "cache_images": True}


def make_context(tmp: Path, name: str = "test-worker:1", **settings: object) -> WorkerContext:
    url = f"sqlite:///{tmp / 'registry.db'}"
    s = WorkerSettings(database_url=url, artifact_root=str(tmp / "artifacts"), broker_url=f"sqla+sqlite:///{tmp}/b.db",
                       **{"lease_seconds": 30, "heartbeat_seconds": 0.1, "progress_seconds": 0, **settings})
    return WorkerContext(s, Database(url), LocalArtifactStore(s.artifact_root), name)


def new_job(ctx: WorkerContext, dataset: DatasetRecord, **params: object) -> int:
    with ctx.db.session() as s:
        return create_job(s, kind="train", model="simple_cnn", dataset_id=dataset.id,
                          params={**QUICK, **params}, epochs=int(params.get("epochs", QUICK["epochs"]))).id
