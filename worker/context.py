"""What a worker process holds: its settings, the registry, the artifact store and its lease name."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from registry.artifacts import LocalArtifactStore, artifact_store
from registry.db import Database
from registry.paths import PathView
from worker.settings import WorkerSettings


@dataclass
class WorkerContext:
    settings: WorkerSettings
    db: Database
    store: LocalArtifactStore
    name: str  # owner of the leases this process takes: host and pid, unique per process

    @classmethod
    def build(cls, settings: WorkerSettings) -> WorkerContext:
        return cls(settings, Database(settings.database_url), artifact_store(settings.artifact_root),
                   f"{socket.gethostname()}:{os.getpid()}")

    @property
    def paths(self) -> PathView:
        """How job errors and published reports show server paths: relative to the data roots and store."""
        return PathView([*self.settings.data_roots, self.store.root])

    def job_folder(self, job_id: int) -> tuple[str, Path]:
        """The job's artifact key and its local folder, in the store every worker shares: a worker that
        takes over a job finds the checkpoints the previous one wrote."""
        key = f"runs/{job_id}"
        return key, self.store.path_of(self.store.uri_for(key))

    def close(self) -> None:
        self.db.dispose()
