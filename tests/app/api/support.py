"""Helpers for the API tests: settings on temporary files, API keys, and counting what a request queued."""

from __future__ import annotations

from pathlib import Path

from kombu import Connection

from app.settings import AppSettings
from registry.db import Database
from registry.keys import create_key
from registry.queue import TRAIN_TASK, queue_names


def make_settings(tmp: Path, data_dir: Path, **overrides: object) -> AppSettings:
    return AppSettings(database_url=f"sqlite:///{tmp / 'registry.db'}", broker_url=f"sqla+sqlite:///{tmp / 'broker.db'}",
                       artifact_root=str(tmp / "artifacts"), data_roots=[data_dir, tmp / "data"], **overrides)


def queued_messages(settings: AppSettings, task: str = TRAIN_TASK) -> int:
    """Messages waiting in the task's queue of the (SQLAlchemy) broker."""
    with Connection(settings.broker_url) as conn:
        queue = conn.SimpleQueue(queue_names(settings)[task])
        try:
            return queue.qsize()
        finally:
            queue.close()


def make_key(database_url: str, name: str, *scopes: str) -> str:
    """A new API key in the registry at `database_url`; its plaintext."""
    db = Database(database_url)
    try:
        with db.session() as s:
            return create_key(s, name=name, scopes=list(scopes or ("admin",)))[1]
    finally:
        db.dispose()
