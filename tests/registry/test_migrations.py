"""Migrations: upgrade from empty and downgrade back on SQLite and PostgreSQL, and the migrated schema
matches the ORM tables (an autogenerate comparison finds nothing to do)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from registry.db import Base, make_engine
from registry.migrate import downgrade, head_revision, revision_of, schema_is_current, upgrade
from tests.integration.services import postgres_database


def _check_round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        assert not schema_is_current(engine)
        upgrade(url)
        assert revision_of(url) == head_revision(url) and schema_is_current(engine)
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], f"the migrations and registry/tables.py differ: {diff}"
        fks = {fk["referred_table"] for fk in inspect(engine).get_foreign_keys("jobs")}
        assert fks == {"datasets", "model_versions"}  # the cyclic key added after the tables
        downgrade(url)
        assert revision_of(url) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(url)  # and up again from base
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_sqlite_round_trip(tmp_path):
    _check_round_trip(f"sqlite:///{tmp_path / 'registry.db'}")


@pytest.mark.integration
def test_postgresql_round_trip():
    with postgres_database("cxr_migrations") as url:
        _check_round_trip(url)
