"""Runs, metrics, checkpoints, artifacts and model versions: every write is idempotent per run."""

from __future__ import annotations

import hashlib
import math

import pytest

from registry.artifacts import LocalArtifactStore
from registry.errors import IntegrityFailure, NotFound
from registry.jobs import create_job, get_job
from registry.publish import publish_checkpoint
from registry.runs import (
    get_artifact,
    get_or_create_run,
    record_artifact,
    record_metrics,
    run_artifacts,
    run_checkpoints,
    run_metrics,
    upsert_checkpoint,
)
from registry.versions import create_model_version, list_versions, resolve, set_alias

SUMMARY = {"architecture": "simple_cnn", "labels": ["Pneumonia"], "task": "binary",
           "data_config": {"input_size": 28}, "thresholds": [0.4], "metrics": {"test": {"mean_auroc": 0.9}},
           "epoch": 1}


@pytest.fixture
def run(db, dataset):
    with db.session() as s:
        job = create_job(s, kind="train", model="simple_cnn", dataset_id=dataset.id, params={})
        return get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=dataset.id, config={"a": 1},
                                 artifact_prefix="file:///tmp/runs/1", device="cpu")


def test_a_job_has_one_run_however_often_it_is_delivered(db, dataset, run):
    with db.session() as s:
        again = get_or_create_run(s, job_id=run.job_id, model="simple_cnn", dataset_id=dataset.id, config={},
                                  artifact_prefix="ignored", device="cuda")
        assert again.id == run.id and again.device == "cuda" and again.config == {"a": 1}
        assert get_job(s, job_id=run.job_id).run_id == run.id


def test_metrics_are_upserted_per_epoch_split_and_name(db, run):
    with db.session() as s:
        record_metrics(s, run_id=run.id, epoch=0, metrics={"train": {"loss": 0.7, "note": "skipped"},
                                                           "val": {"loss": 0.6, "mean_auroc": float("nan")}})
    with db.session() as s:  # the epoch is redone after a resume: same rows, new values
        record_metrics(s, run_id=run.id, epoch=0, metrics={"train": {"loss": 0.5}})
        record_metrics(s, run_id=run.id, epoch=1, metrics={"train": {"loss": 0.4}})
    with db.session() as s:
        rows = [(m.epoch, m.split, m.name, m.value) for m in run_metrics(s, run_id=run.id)]
    assert rows == [(0, "train", "loss", 0.5), (0, "val", "loss", 0.6), (0, "val", "mean_auroc", None),
                    (1, "train", "loss", 0.4)]


def test_one_checkpoint_row_per_kind_follows_the_file(db, run):
    with db.session() as s:
        upsert_checkpoint(s, run_id=run.id, kind="last", uri="file:///a", size_bytes=1, sha256="a" * 64, epoch=0,
                          metrics={"val": {"loss": math.inf}})
        upsert_checkpoint(s, run_id=run.id, kind="last", uri="file:///a", size_bytes=2, sha256="b" * 64, epoch=1)
        upsert_checkpoint(s, run_id=run.id, kind="best", uri="file:///b", size_bytes=2, sha256="c" * 64, epoch=1)
    with db.session() as s:
        ckpts = {c.kind: c for c in run_checkpoints(s, run_id=run.id)}
    assert set(ckpts) == {"best", "last"}
    assert (ckpts["last"].epoch, ckpts["last"].sha256, ckpts["last"].size_bytes) == (1, "b" * 64, 2)


def test_json_columns_store_nan_as_null(db, run):
    with db.session() as s:
        ckpt = upsert_checkpoint(s, run_id=run.id, kind="best", uri="file:///b", size_bytes=1, sha256="c" * 64,
                                 epoch=0, metrics={"val": {"auroc": [float("nan"), 0.5]}})
    with db.session() as s:
        assert run_checkpoints(s, run_id=run.id)[0].metrics == {"val": {"auroc": [None, 0.5]}}
    assert ckpt.kind == "best"


def test_artifacts_are_named_per_run(db, run):
    with db.session() as s:
        record_artifact(s, run_id=run.id, name="report.json", uri="file:///r1", media_type="application/json",
                        size_bytes=1, sha256="a" * 64)
        record_artifact(s, run_id=run.id, name="report.json", uri="file:///r2", media_type="application/json",
                        size_bytes=2, sha256="b" * 64)
    with db.session() as s:
        assert [a.uri for a in run_artifacts(s, run_id=run.id)] == ["file:///r2"]
        assert get_artifact(s, run_id=run.id, name="report.json").size_bytes == 2
        with pytest.raises(NotFound, match="artifacts: report.json"):
            get_artifact(s, run_id=run.id, name="../../etc/passwd")


def test_versions_increase_per_name_and_a_run_gets_one(db, dataset, run):
    with db.session() as s:
        ckpt = upsert_checkpoint(s, run_id=run.id, kind="final", uri="file:///m", size_bytes=1, sha256="d" * 64,
                                 epoch=1)
        fields = {"architecture": "simple_cnn", "checkpoint_id": ckpt.id, "labels": ["Pneumonia"], "task": "binary",
                  "data_config": {}, "thresholds": [0.5], "metrics": {}}
        imported = create_model_version(s, name="pneumo", **fields)
        first = create_model_version(s, name="pneumo", run_id=run.id, **fields)
        again = create_model_version(s, name="pneumo", run_id=run.id, **fields)
    assert (imported.version, first.version, again.id) == (1, 2, first.id)
    with db.session() as s:
        assert [v.version for v in list_versions(s, name="pneumo")] == [1, 2]
        set_alias(s, name="pneumo", alias="production", version=1)
        assert resolve(s, "pneumo").version == 1  # a bare name means its production alias
        moved = set_alias(s, name="pneumo", alias="production", version=2)
        assert moved.aliases == ("production",)
        assert resolve(s, "pneumo@production").version == 2 and resolve(s, "pneumo:1").aliases == ()
        with pytest.raises(NotFound, match="no model named 'other'"):
            resolve(s, "other")


def test_publishing_a_run_twice_gives_one_version(db, dataset, run, tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    with db.session() as s:
        v1 = publish_checkpoint(s, store, local_path=model, key="runs/1/model.pt", name="pneumo", summary=SUMMARY,
                                run_id=run.id, dataset_id=dataset.id, alias="staging")
    with db.session() as s:
        v2 = publish_checkpoint(s, store, local_path=model, key="runs/1/model.pt", name="pneumo", summary=SUMMARY,
                                run_id=run.id, dataset_id=dataset.id)
        assert len(list_versions(s, name="pneumo")) == 1
    assert v1.id == v2.id and v1.version == 1 and v1.aliases == ("staging",)
    assert v1.checkpoint.sha256 == hashlib.sha256(b"weights").hexdigest() and v1.thresholds == [0.4]
    assert store.read_bytes(v1.checkpoint.uri, sha256=v1.checkpoint.sha256) == b"weights"


def test_the_store_refuses_changed_files_and_foreign_paths(tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    stored = store.put_file(src, "runs/1/f.bin")
    (tmp_path / "artifacts" / "runs" / "1" / "f.bin").write_bytes(b"abd")
    with pytest.raises(IntegrityFailure, match="changed or replaced"):
        store.read_bytes(stored.uri, sha256=stored.sha256)
    with pytest.raises(ValueError, match="outside the store"):
        store.read_bytes((tmp_path / "f.bin").as_uri())
    with pytest.raises(ValueError, match="invalid artifact key"):
        store.uri_for("../escape")
