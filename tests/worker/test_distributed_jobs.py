"""A training job that asks for several devices: trained by one process per device when the worker owns
them (here two gloo processes on the CPU), refused with a message when it does not."""

from __future__ import annotations

from pathlib import Path

from registry.datasets import create_dataset
from registry.jobs import get_job
from registry.migrate import upgrade
from registry.runs import run_checkpoints, run_metrics
from tests.worker.support import make_context, new_job
from worker.training import run_training_job


def _context(tmp: Path, data_dir: Path, **settings: object):
    upgrade(f"sqlite:///{tmp / 'registry.db'}")
    ctx = make_context(tmp, **settings)
    with ctx.db.session() as s:
        dataset = create_dataset(s, name="pneumo", kind="pneumoniamnist",
                                 location=str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), options={},
                                 labels=["Pneumonia"], task="binary", splits={"train": 4708, "val": 524, "test": 624})
    return ctx, dataset


def test_a_two_device_job_trains_on_two_processes_and_publishes_once(tmp_path, data_dir):
    ctx, dataset = _context(tmp_path, data_dir, devices=2)
    try:
        job_id = new_job(ctx, dataset, devices=2, device="cpu")
        assert run_training_job(ctx, job_id) == "succeeded"
        with ctx.db.session() as s:
            job = get_job(s, job_id=job_id)
            metrics = run_metrics(s, run_id=job.run_id)
            checkpoints = run_checkpoints(s, run_id=job.run_id)
        assert job.result["model_version"] and job.result["best_epoch"] in (1, 2)
        assert sorted({m.epoch for m in metrics}) == [1, 2]  # epochs count from 1
        assert {c.kind for c in checkpoints} >= {"last", "best"}
        # the prepared cache under the artifact root was written and used
        assert sorted(p.name.rsplit("-", 1)[0] for p in (ctx.store.root / "prepared").iterdir()
                      if not p.name.startswith(".")) == ["pneumoniamnist-test", "pneumoniamnist-train",
                                                         "pneumoniamnist-val"]
    finally:
        ctx.close()


def test_a_job_asking_more_devices_than_the_worker_owns_fails_with_a_message(tmp_path, data_dir):
    ctx, dataset = _context(tmp_path, data_dir)
    try:
        job_id = new_job(ctx, dataset, devices=4, device="cpu")
        assert run_training_job(ctx, job_id) == "failed"
        with ctx.db.session() as s:
            job = get_job(s, job_id=job_id)
        assert job.error_code == "invalid_config" and "asks for 4 devices; this worker owns 1" in job.error
    finally:
        ctx.close()
