"""The evaluation task's work: a model version on a dataset split, with the version's own thresholds.

The checkpoint's sha256 is checked against the registry before it is loaded; the report and plots
become the artifacts of the job's run, and the headline metrics its result.
"""

from __future__ import annotations

import logging

from ml.evaluation.evaluate import evaluate_checkpoint
from registry.datasets import get_dataset
from registry.jobs import begin_publishing, finish_job, set_phase
from registry.records import JobRecord
from registry.runs import finish_run, get_or_create_run
from registry.versions import get_model_version
from worker.context import WorkerContext
from worker.devices import expected_device
from worker.lease import Lease
from worker.runner import record_run_files, run_job

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("n", "mean_auroc", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "accuracy")


def run_evaluation_job(ctx: WorkerContext, job_id: int) -> str:
    """Evaluate job `job_id`; safe to call again for the same job (see `worker.runner.run_job`)."""
    return run_job(ctx, job_id, expected_device(ctx, job_id), evaluate)


def evaluate(ctx: WorkerContext, job: JobRecord, lease: Lease) -> None:
    assert job.model_version_id is not None and job.split is not None, "an evaluation job names a version and split"
    with ctx.db.session() as s:
        version = get_model_version(s, version_id=job.model_version_id)
        dataset = get_dataset(s, dataset_id=job.dataset_id)
    checkpoint = version.checkpoint
    assert checkpoint is not None
    ctx.store.read_bytes(checkpoint.uri, sha256=checkpoint.sha256)  # IntegrityFailure if the file changed
    key, folder = ctx.job_folder(job.id)
    p = job.params
    with ctx.db.session() as s:
        run = get_or_create_run(s, job_id=job.id, model=version.architecture, dataset_id=dataset.id,
                                config={"model_version": version.ref, "split": job.split, **p},
                                artifact_prefix=ctx.store.uri_for(key), device=job.device)
    with ctx.db.session() as s:
        set_phase(s, job_id=job.id, phase="evaluating")
    report = evaluate_checkpoint(
        ctx.store.path_of(checkpoint.uri), dataset=dataset.kind, data_root=dataset.location,
        dataset_options=dataset.options, split=job.split, out_dir=folder, device=p.get("device", "auto"),
        batch_size=p.get("batch_size", 128), tta=p.get("tta"), max_samples=p.get("max_samples"),
    )
    split_report = report["splits"][job.split]
    summary = {k: split_report[k] for k in SUMMARY_KEYS if k in split_report}
    summary["auroc"] = {name: c["auroc"] for name, c in split_report["per_class"].items()}
    result = {"model_version": version.ref, "dataset": dataset.name, "split": job.split, "metrics": summary}
    with ctx.db.session() as s:
        set_phase(s, job_id=job.id, phase="publishing")
    with ctx.db.session() as s:
        begin_publishing(s, job_id=job.id, worker=ctx.name)  # a cancel accepted before this wins
        record_run_files(s, ctx.store, run_id=run.id, key=key, folder=folder, paths=ctx.paths)
        finish_run(s, run_id=run.id, status="succeeded",
                   report={"thresholds": report["thresholds"], "splits": {job.split: summary}})
        finish_job(s, job_id=job.id, status="succeeded", worker=ctx.name, result=result)
    log.info("job %d: %s on %s/%s: mean AUROC %s", job.id, version.ref, dataset.name, job.split,
             summary.get("mean_auroc"))
