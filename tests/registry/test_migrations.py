"""Migrations: upgrade from empty and downgrade back on SQLite and PostgreSQL, and the migrated schema
matches the ORM tables (an autogenerate comparison finds nothing to do)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from registry.datasets import create_dataset
from registry.db import Base, Database, make_engine
from registry.jobs import create_job, finish_job, get_job
from registry.migrate import downgrade, head_revision, revision_of, schema_is_current, upgrade
from registry.runs import (
    finish_run,
    get_or_create_run,
    get_run,
    record_metrics,
    run_checkpoints,
    run_metrics,
    upsert_checkpoint,
)
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


def test_stored_epochs_move_between_counting_from_0_and_from_1(tmp_path):
    """Revision 0004: epochs written counting from 0 (metrics, checkpoints, best epochs in rows, reports and
    results) count from 1 after the upgrade, and from 0 again after a downgrade."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        dataset = create_dataset(s, name="d", kind="pneumoniamnist", location="/data/d.npz", options={},
                                 labels=["Pneumonia"], task="binary", splits={"train": 1})
        job = create_job(s, kind="train", model="simple_cnn", dataset_id=dataset.id, params={})
        run = get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=dataset.id, config={},
                                artifact_prefix="file:///tmp/runs/1", device="cpu")
        for epoch in (1, 2):
            record_metrics(s, run_id=run.id, epoch=epoch, metrics={"val": {"loss": 1 / epoch}})
        upsert_checkpoint(s, run_id=run.id, kind="best", uri="file:///b", size_bytes=1, sha256="b" * 64, epoch=2)
        finish_run(s, run_id=run.id, status="succeeded", best_epoch=2, report={"best_epoch": 2, "epochs_run": 2})
        finish_job(s, job_id=job.id, status="succeeded", result={"best_epoch": 2, "model_version": "m:1"})

    def stored() -> tuple[object, ...]:
        with db.session() as s:
            metrics = [m.epoch for m in run_metrics(s, run_id=run.id)]
            best = get_run(s, run_id=run.id)
            (ckpt,) = run_checkpoints(s, run_id=run.id)
            result = get_job(s, job_id=job.id).result
        return metrics, ckpt.epoch, best.best_epoch, best.report["best_epoch"], result["best_epoch"]

    assert stored() == ([1, 2], 2, 2, 2, 2)
    downgrade(url, "0003")
    db.engine.dispose()
    with db.engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT epoch FROM run_metrics ORDER BY epoch"))] == [0, 1]
        assert conn.execute(text("SELECT best_epoch FROM runs")).scalar() == 1
    upgrade(url)
    assert stored() == ([1, 2], 2, 2, 2, 2)
    db.dispose()
