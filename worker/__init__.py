"""Celery workers: thin tasks that take a job id, load everything from the registry, call `ml/` and
write progress, metrics, checkpoints, reports and model versions back. Started with `cxr worker`."""
