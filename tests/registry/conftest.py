"""Registry tests run each query on SQLite and on a PostgreSQL database of this session's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.db import Base, Database
from registry.migrate import upgrade
from registry.records import DatasetRecord
from tests.integration.services import postgres_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database("cxr_registry") as url:
        upgrade(url)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty registry."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    if request.param == "postgresql":
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with database.session() as s:
            s.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


@pytest.fixture
def dataset(db: Database) -> DatasetRecord:
    from registry.datasets import create_dataset

    with db.session() as s:
        return create_dataset(s, name="pneumo", kind="pneumoniamnist", location="/data/pneumo.npz", options={},
                              labels=["Pneumonia"], task="binary", splits={"train": 10, "val": 5, "test": 5})
