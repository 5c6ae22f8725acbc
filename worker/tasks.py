"""The tasks: thin, they take a job id and hand over to the code that does the work.

Late acknowledgement and reject-on-worker-lost (from the shared configuration) mean a task whose worker
dies is not lost; the lease makes running it twice safe.
"""

from __future__ import annotations

from registry.queue import EVALUATE_TASK, TRAIN_TASK
from worker.celery_app import app, worker_context
from worker.evaluation import run_evaluation_job
from worker.training import run_training_job


@app.task(name=TRAIN_TASK)
def train(job_id: int) -> str:
    """Train the job's model on its dataset, publish the result as a model version."""
    return run_training_job(worker_context(), job_id)


@app.task(name=EVALUATE_TASK)
def evaluate(job_id: int) -> str:
    """Evaluate the job's model version on its dataset split."""
    return run_evaluation_job(worker_context(), job_id)
