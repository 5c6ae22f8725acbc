"""Worker tests run the task code in-process against a migrated SQLite registry and real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.artifacts import LocalArtifactStore
from registry.datasets import create_dataset
from registry.db import Database
from registry.jobs import create_job
from registry.migrate import upgrade
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


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerContext]:
    tmp = tmp_path_factory.mktemp("worker")
    upgrade(f"sqlite:///{tmp / 'registry.db'}")
    context = make_context(tmp)
    yield context
    context.close()


@pytest.fixture(scope="module")
def pneumonia(ctx: WorkerContext, data_dir: Path) -> DatasetRecord:
    with ctx.db.session() as s:
        return create_dataset(s, name="pneumo", kind="pneumoniamnist",
                              location=str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), options={},
                              labels=["Pneumonia"], task="binary", splits={"train": 4708, "val": 524, "test": 624})


def new_job(ctx: WorkerContext, dataset: DatasetRecord, **params: object) -> int:
    with ctx.db.session() as s:
        return create_job(s, kind="train", model="simple_cnn", dataset_id=dataset.id,
                          params={**QUICK, **params}, epochs=int(params.get("epochs", QUICK["epochs"]))).id
