"""The Celery application the `celery worker` process runs (`celery -A worker.celery_app worker`,
started by `cxr worker`). Its configuration is `registry.queue.celery_config`, shared with the API."""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from registry.queue import TASK_FOR_KIND, celery_config
from worker.context import WorkerContext
from worker.lease import shutting_down
from worker.recovery import Sweeper
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

settings = WorkerSettings()
app = Celery("cxr", include=["worker.tasks"])
app.conf.update(celery_config(settings))


@functools.cache
def worker_context() -> WorkerContext:
    """This process's registry connection and artifact store, built on first use (not at import)."""
    return WorkerContext.build(settings)


def send_job(kind: str, job_id: int, task_id: str) -> None:
    app.send_task(TASK_FOR_KIND[kind], args=[job_id], task_id=task_id)


_sweeper: Sweeper | None = None


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    global _sweeper
    ctx = worker_context()
    log.info("worker %s ready; sweeping for orphaned jobs every %.0f s", ctx.name, settings.sweep_seconds)
    _sweeper = Sweeper(ctx.db, send_job, interval=settings.sweep_seconds,
                       unsent_after_seconds=settings.unsent_after_seconds)
    _sweeper.start()


@worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()


@worker_shutting_down.connect
def _hand_back_on_shutdown(**_: Any) -> None:
    """SIGTERM (warm shutdown): the running job stops at its next step and is handed back, instead of
    running to its end or being killed after the grace period. Runs in the signal handler: only sets a flag."""
    shutting_down.set()
