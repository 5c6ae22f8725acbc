"""The training task's work: build the run's config from the registry, `fit` it in the job's folder
(resuming from its last checkpoint), then publish the model, the report and the plots.

The results (artifacts, model version, run and job outcome) are written in one transaction, so a
worker that dies half-way leaves either all of them or none; the next delivery redoes what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ml.checkpoint import checkpoint_summary, load_checkpoint
from ml.config import TrainConfig
from ml.errors import ConfigError, TrainingCancelled
from ml.training.distributed import launch
from ml.training.loop import FitResult, fit
from registry.datasets import get_dataset
from registry.jobs import begin_publishing, finish_job, set_phase
from registry.publish import publish_checkpoint
from registry.records import JobRecord
from registry.runs import finish_run, get_or_create_run
from registry.versions import default_model_name
from worker.context import WorkerContext
from worker.devices import expected_device
from worker.lease import Lease
from worker.reporter import RegistryReporter
from worker.runner import record_run_files, run_job

log = logging.getLogger(__name__)


def run_training_job(ctx: WorkerContext, job_id: int) -> str:
    """Train job `job_id`; safe to call again for the same job (see `worker.runner.run_job`)."""
    return run_job(ctx, job_id, expected_device(ctx, job_id), train)


def train(ctx: WorkerContext, job: JobRecord, lease: Lease) -> None:
    with ctx.db.session() as s:
        dataset = get_dataset(s, dataset_id=job.dataset_id)
    config = TrainConfig.parse({"model": job.model, "dataset": dataset.kind, "data_root": dataset.location,
                                "dataset_options": dataset.options, "params": job.params})
    key, folder = ctx.job_folder(job.id)
    with ctx.db.session() as s:
        run = get_or_create_run(s, job_id=job.id, model=job.model, dataset_id=dataset.id,
                                config=config.model_dump(mode="json"), artifact_prefix=ctx.store.uri_for(key),
                                device=job.device)
    reporter = RegistryReporter(ctx.db, ctx.store, lease, job_id=job.id, run_id=run.id, key=key, folder=folder,
                                progress_seconds=ctx.settings.progress_seconds)
    result = _fit(ctx, config, folder, reporter)

    summary = checkpoint_summary(load_checkpoint(result.model_path))
    name = job.register_as or default_model_name(dataset.name, job.model)
    if lease.cancel_requested.is_set():  # asked during the final evaluation
        raise TrainingCancelled("cancelled before publishing")
    with ctx.db.session() as s:
        set_phase(s, job_id=job.id, phase="publishing")
    with ctx.db.session() as s:
        begin_publishing(s, job_id=job.id, worker=ctx.name)  # a cancel accepted before this wins
        record_run_files(s, ctx.store, run_id=run.id, key=key, folder=folder, paths=ctx.paths)
        version = publish_checkpoint(s, ctx.store, local_path=result.model_path, key=f"{key}/model.pt", name=name,
                                     summary=summary, run_id=run.id, dataset_id=dataset.id,
                                     description=f"{job.model} trained on {dataset.name} by job {job.id}")
        report = run_report(result.report, summary)
        finish_run(s, run_id=run.id, status="succeeded", best_epoch=result.best_epoch, report=report)
        finish_job(s, job_id=job.id, status="succeeded", worker=ctx.name,
                   result={"model_version": version.ref, "best_epoch": result.best_epoch, "metrics": summary["metrics"]})
    log.info("job %d produced %s", job.id, version.ref)


def _fit(ctx: WorkerContext, config: TrainConfig, folder: Path, reporter: RegistryReporter) -> FitResult:
    """`fit` in this process, or on several devices when the job asks for them (up to what this worker owns)."""
    s = ctx.settings
    cache = ctx.store.root / "prepared" if s.data_cache else None
    devices = config.params.devices
    if devices > s.devices:
        raise ConfigError(f"the job asks for {devices} devices; this worker owns {s.devices} (CXR_DEVICES)")
    if devices == 1:
        return fit(config, folder, reporter, resume=True, cache_dir=cache)
    return launch(config, folder, reporter, resume=True, cache_dir=cache, timeout_s=s.ddp_timeout_seconds,
                  restarts=s.ddp_restarts)


def run_report(report: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The part of `report.json` kept on the run row: headline metrics per split, thresholds, best epoch
    (the whole report, with curves and per-class detail, is the run's `report.json` artifact)."""
    keep = ("best_epoch", "epochs_run", "device", "threshold_policy", "thresholds", "pathologies")
    return {**{k: report[k] for k in keep if k in report}, "splits": summary["metrics"]}
