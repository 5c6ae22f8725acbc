"""The training and evaluation tasks' work, in-process: results land in the registry, a second delivery
changes nothing, a delivery after a dead worker resumes from its checkpoint."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from ml.config import TrainConfig
from ml.errors import DatasetError, TrainingCancelled
from ml.training.loop import fit
from ml.training.reporter import Reporter
from registry.jobs import claim_job, create_job, get_job, request_cancel
from registry.paths import PathView
from registry.runs import get_run, run_artifacts, run_checkpoints, run_metrics
from registry.versions import list_versions
from tests.worker.support import QUICK, new_job
from worker.evaluation import run_evaluation_job
from worker.runner import describe
from worker.training import run_training_job


def _sha256(uri: str, ctx) -> str:
    return hashlib.sha256(ctx.store.path_of(uri).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    assert run_training_job(ctx, job_id) == "succeeded"
    with ctx.db.session() as s:
        return get_job(s, job_id=job_id)


def test_a_training_job_writes_run_metrics_checkpoints_report_and_version(ctx, trained):
    job = trained
    assert (job.status, job.epoch, job.epochs, job.device, job.attempts) == ("succeeded", 2, 2, "cpu", 1)
    assert job.model_version.name == "pneumo-simple_cnn" and job.model_version.version == 1
    assert set(job.latest_metrics) == {"train", "val"}
    with ctx.db.session() as s:
        run = get_run(s, run_id=job.run_id)
        metrics = run_metrics(s, run_id=run.id)
        ckpts = {c.kind: c for c in run_checkpoints(s, run_id=run.id)}
        artifacts = {a.name: a for a in run_artifacts(s, run_id=run.id)}
    assert run.status == "succeeded" and run.resumed_from_epoch is None and run.device == "cpu"
    assert {(m.epoch, m.split) for m in metrics} == {(1, "train"), (1, "val"), (2, "train"), (2, "val")}
    assert set(ckpts) == {"last", "best", "final"}
    for ckpt in ckpts.values():
        assert _sha256(ckpt.uri, ctx) == ckpt.sha256
    assert {"report.json", "config.json", "metrics.jsonl", "training_curves.png", "roc_test.png"} <= set(artifacts)
    assert artifacts["roc_test.png"].media_type == "image/png"
    assert run.report["splits"]["test"]["mean_auroc"] > 0.5 and len(run.report["thresholds"]) == 1


def test_a_second_delivery_of_a_finished_job_changes_nothing(ctx, trained):
    with ctx.db.session() as s:
        before = len(run_metrics(s, run_id=trained.run_id)), len(list_versions(s))
    assert run_training_job(ctx, trained.id) == "finished"
    with ctx.db.session() as s:
        assert (len(run_metrics(s, run_id=trained.run_id)), len(list_versions(s))) == before
        assert get_job(s, job_id=trained.id).attempts == 1


def test_a_delivery_while_another_worker_holds_the_lease_is_a_no_op(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker="other:1", device="cpu", lease_seconds=600)
    assert run_training_job(ctx, job_id) == "busy"
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
    assert (job.worker, job.attempts, job.run_id) == ("other:1", 1, None)


class _DiesAfterFirstEpoch(Reporter):
    def on_epoch_end(self, *, epoch, metrics):
        self.done = epoch

    def should_stop(self) -> bool:
        return getattr(self, "done", None) == 1


def test_a_delivery_after_a_dead_worker_resumes_from_its_last_checkpoint(ctx, pneumonia, data_dir):
    job_id = new_job(ctx, pneumonia, epochs=3)
    # the first worker claimed it, trained one epoch into the shared job folder and died
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker="dead:1", device="cpu", lease_seconds=-1)
    _, folder = ctx.job_folder(job_id)
    config = TrainConfig.parse({"model": "simple_cnn", "dataset": "pneumoniamnist",
                                "data_root": str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"),
                                "params": {**QUICK, "epochs": 3}})
    with pytest.raises(TrainingCancelled):
        fit(config, folder, _DiesAfterFirstEpoch())
    assert run_training_job(ctx, job_id) == "succeeded"
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
        run = get_run(s, run_id=job.run_id)
        epochs = sorted({m.epoch for m in run_metrics(s, run_id=run.id)})
    assert (job.attempts, job.worker, run.resumed_from_epoch) == (2, ctx.name, 1)
    assert epochs == [1, 2, 3]  # epoch 1 comes from the dead worker's run folder
    assert job.model_version is not None


def test_an_evaluation_job_reports_on_a_split(ctx, pneumonia, trained):
    with ctx.db.session() as s:
        version = list_versions(s, name="pneumo-simple_cnn")[0]
        job_id = create_job(s, kind="evaluate", model=version.ref, dataset_id=pneumonia.id,
                            params={"max_samples": 64}, model_version_id=version.id, split="val").id
    assert run_evaluation_job(ctx, job_id) == "succeeded"
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
        artifacts = {a.name: a for a in run_artifacts(s, run_id=job.run_id)}
    assert job.result["metrics"]["n"] == 64 and job.result["model_version"] == "pneumo-simple_cnn:1"
    assert job.model_version.version == 1 and {"report.json", "roc_val.png"} <= set(artifacts)
    report = json.loads(ctx.store.read_bytes(artifacts["report.json"].uri, sha256=artifacts["report.json"].sha256))
    assert report["checkpoint"] == f"runs/{trained.id}/model.pt"  # its key in the store, not its server path


def test_an_evaluation_refuses_a_changed_checkpoint(ctx, pneumonia, trained, tmp_path):
    with ctx.db.session() as s:
        version = list_versions(s, name="pneumo-simple_cnn")[0]
        job_id = create_job(s, kind="evaluate", model=version.ref, dataset_id=pneumonia.id, params={},
                            model_version_id=version.id, split="test").id
    path: Path = ctx.store.path_of(version.checkpoint.uri)
    original = path.read_bytes()
    path.write_bytes(original + b"tampered")
    try:
        assert run_evaluation_job(ctx, job_id) == "failed"
    finally:
        path.write_bytes(original)
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
    assert job.status == "failed" and "changed or replaced" in job.error and job.error_code == "integrity_failure"
    assert str(ctx.store.root) not in job.error and "runs/" in job.error  # the artifact by its key


def test_a_job_that_cannot_run_fails_with_a_message(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia, train_split="nope")
    assert run_training_job(ctx, job_id) == "failed"
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
        run = get_run(s, run_id=job.run_id)
    assert "no rows in split 'nope'" in job.error and run.status == "failed" and job.error_code == "dataset_error"
    assert job.stop_reason.startswith("failed after 0 of 2 epochs: ") and run.report["stop_reason"] == job.stop_reason


def test_a_cancelled_run_keeps_its_finished_epochs_metrics_curves_and_best_checkpoint(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia, epochs=50)

    def cancel_after_the_first_epoch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with ctx.db.session() as s:
                if get_job(s, job_id=job_id).epoch >= 1:
                    request_cancel(s, job_id=job_id)
                    return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_after_the_first_epoch)
    canceller.start()
    assert run_training_job(ctx, job_id) == "cancelled"
    canceller.join()
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
        run = get_run(s, run_id=job.run_id)
        epochs = sorted({m.epoch for m in run_metrics(s, run_id=run.id)})
        ckpts = {c.kind: c for c in run_checkpoints(s, run_id=run.id)}
        artifacts = {a.name: a for a in run_artifacts(s, run_id=run.id)}
    finished = job.epoch
    assert job.status == "cancelled" and job.model_version is None and 1 <= finished < 50
    assert job.stop_reason == f"cancelled on request after {finished} of 50 epochs"
    assert run.status == "cancelled" and run.report["stop_reason"] == job.stop_reason
    assert epochs == list(range(1, finished + 1))
    assert set(ckpts) == {"last", "best"} and ckpts["last"].epoch == finished
    assert run.best_epoch == ckpts["best"].epoch == run.report["best_epoch"] and 1 <= run.best_epoch <= finished
    assert {"metrics.jsonl", "training_curves.png", "config.json"} <= set(artifacts) and "report.json" not in artifacts
    lines = [json.loads(line) for line in
             ctx.store.path_of(artifacts["metrics.jsonl"].uri).read_text().splitlines()]
    assert sorted({m["epoch"] for m in lines}) == epochs


def test_model_kwargs_a_model_does_not_take_fail_the_job_as_a_model_error(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia, model_kwargs={"bogus": 1})
    assert run_training_job(ctx, job_id) == "failed"
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
    assert job.error_code == "model_error" and "bogus" in job.error and "Traceback" not in job.error


def test_an_unexpected_failure_records_only_its_type():
    paths = PathView([Path("/srv/data")])
    code, message = describe(RuntimeError("cuDNN said no at /srv/secret/conf\nTraceback ..."), paths)
    assert code == "internal_error" and "RuntimeError" in message
    assert "secret" not in message and "Traceback" not in message
    code, message = describe(DatasetError("NIH table not found: /srv/data/nih/t.csv (see /etc/x)"), paths)
    assert (code, message) == ("dataset_error", "NIH table not found: nih/t.csv (see x)")
    assert describe(MemoryError(), paths)[0] == "out_of_memory"


def test_published_reports_show_paths_relative_to_the_data_root_and_store(ctx, trained, data_dir):
    with ctx.db.session() as s:
        run = get_run(s, run_id=trained.run_id)
        artifacts = {a.name: a for a in run_artifacts(s, run_id=run.id)}
    assert run.config["data_root"] == str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz")  # what the worker needs
    config = json.loads(ctx.store.read_bytes(artifacts["config.json"].uri, sha256=artifacts["config.json"].sha256))
    assert config["train_config"]["data_root"] == "pneumoniamnist/pneumoniamnist.npz"
    for artifact in artifacts.values():
        if artifact.media_type == "application/json":
            text = ctx.store.read_bytes(artifact.uri).decode()
            assert str(data_dir) not in text and str(ctx.store.root) not in text, artifact.name
