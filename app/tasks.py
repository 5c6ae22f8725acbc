"""Sending tasks to the workers, by name: the API never imports `worker/` (nor torch's training code).

The job row is written before the task is sent; when the broker cannot be reached the send fails
fast (`broker_connect_timeout`) with `QueueUnavailable`, and the job stays queued for a worker's sweep
to send once the broker is back.
"""

from __future__ import annotations

import logging
import uuid

from celery import Celery

from registry.queue import TASK_FOR_KIND, celery_config
from registry.settings import RegistrySettings

log = logging.getLogger(__name__)

# one quick reconnection (e.g. after the broker restarted), then give up: the request is waiting
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class QueueUnavailable(Exception):
    """The broker could not take the task."""


class TaskQueue:
    def __init__(self, settings: RegistrySettings) -> None:
        self._celery = Celery("cxr-api", set_as_current=False)
        self._celery.conf.update(celery_config(settings))

    def send(self, kind: str, job_id: int) -> str:
        """Send the job's task; returns its task id."""
        task_id = str(uuid.uuid4())
        try:
            self._celery.send_task(TASK_FOR_KIND[kind], args=[job_id], task_id=task_id, retry=True,
                                   retry_policy=_RETRY_POLICY)
        except Exception as exc:  # every transport raises its own kinds
            log.warning("sending job %d failed: %s", job_id, exc)
            raise QueueUnavailable(" ".join(str(exc).split()) or type(exc).__name__) from exc
        return task_id

    def close(self) -> None:
        self._celery.close()
