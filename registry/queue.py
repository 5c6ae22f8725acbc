"""The contract between the API (which sends tasks by name) and the workers (which define them).

`celery_config` is the one Celery configuration both sides use, as a plain dict (this package does
not import Celery). Long training is the design point: late acknowledgement, a prefetch of one, and
a visibility timeout longer than any run.

What each broker does when a worker dies in the middle of a task:

- Redis: the unacknowledged message is delivered again after `broker_visibility_timeout`.
- kombu's SQLAlchemy transport (the embedded default, on a SQLite file): a fetched message is marked
  invisible and is never delivered again, there is no visibility timeout; unacknowledged messages go
  back only when a worker shuts down cleanly. Rows are never deleted (one per job, acknowledged or
  not). It has no fan-out, so remote control (`celery inspect`) is off; the registry shows the jobs.

Neither is relied on: workers sweep the registry for jobs whose lease lapsed or that were never sent
and send them again; the lease makes a duplicate delivery a no-op.
"""

from __future__ import annotations

from typing import Any

from registry.settings import RegistrySettings

TRAIN_TASK = "cxr.train"
EVALUATE_TASK = "cxr.evaluate"
TRAINING_QUEUE = "training"
EVALUATION_QUEUE = "evaluation"

TASK_FOR_KIND = {"train": TRAIN_TASK, "evaluate": EVALUATE_TASK}


def queue_names(settings: RegistrySettings) -> dict[str, str]:
    """Task name -> the queue it goes to, with the configured namespace."""
    prefix = f"{settings.queue_namespace}." if settings.queue_namespace else ""
    return {TRAIN_TASK: prefix + TRAINING_QUEUE, EVALUATE_TASK: prefix + EVALUATION_QUEUE}


def is_sqlalchemy_broker(url: str) -> bool:
    return url.startswith(("sqla+", "sqlalchemy+"))


def transport_options(settings: RegistrySettings) -> dict[str, Any]:
    """Options per transport: the SQLAlchemy transport passes its options to `create_engine`."""
    if is_sqlalchemy_broker(settings.broker_url):
        return {"connect_args": {"timeout": 30}} if "sqlite" in settings.broker_url else {}
    timeout = settings.broker_connect_timeout
    return {"visibility_timeout": settings.broker_visibility_timeout, "socket_connect_timeout": timeout,
            "socket_timeout": max(timeout, 10.0), "max_retries": 1}


def celery_config(settings: RegistrySettings) -> dict[str, Any]:
    routes = {name: {"queue": queue} for name, queue in queue_names(settings).items()}
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options(settings),
        "broker_connection_timeout": settings.broker_connect_timeout,
        "broker_connection_retry_on_startup": True,
        "task_routes": routes,
        "task_default_queue": routes[TRAIN_TASK]["queue"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        # the registry is where jobs are inspected; kombu's SQLAlchemy transport has no fan-out anyway
        "worker_enable_remote_control": False,
        "enable_utc": True,
    }
