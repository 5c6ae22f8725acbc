"""Worker tests run the task code in-process against a migrated SQLite registry and real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.datasets import create_dataset
from registry.migrate import upgrade
from registry.records import DatasetRecord
from tests.worker.support import make_context
from worker.context import WorkerContext


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
