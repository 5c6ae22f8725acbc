"""`RegistryReporter`: what `fit` reports, written to the registry as it happens.

Progress is throttled (one write per `progress_seconds`); per-epoch metrics and checkpoint rows are
upserts, so an epoch redone after a resume rewrites its rows instead of adding new ones. When a
delivery resumes a run, the epochs the previous worker finished are synced from the run folder first:
it may have died after writing `last.pt` but before reporting that epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ml.checkpoint import checkpoint_epoch, load_checkpoint
from ml.training.reporter import Reporter
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.jobs import set_phase, update_progress
from registry.runs import record_metrics, update_run, upsert_checkpoint
from worker.devices import describe_device
from worker.lease import Lease

log = logging.getLogger(__name__)

CHECKPOINT_FILES = {"last": "last.pt", "best": "best.pt"}


class RegistryReporter(Reporter):
    def __init__(self, db: Database, store: LocalArtifactStore, lease: Lease, *, job_id: int, run_id: int,
                 key: str, folder: Path, progress_seconds: float) -> None:
        self.db, self.store, self.lease = db, store, lease
        self.job_id, self.run_id, self.key, self.folder = job_id, run_id, key, folder
        self.progress_seconds = progress_seconds
        self._last_write = 0.0
        self.start_epoch = 0

    def on_start(self, *, start_epoch: int, epochs: int, steps_per_epoch: int, device: str) -> None:
        device = describe_device(device)
        with self.db.session() as s:
            update_progress(s, job_id=self.job_id, epoch=start_epoch, epochs=epochs, step=0, steps=steps_per_epoch,
                            device=device)
            update_run(s, run_id=self.run_id, device=device, resumed_from_epoch=start_epoch or None)
            self.start_epoch = start_epoch
            if start_epoch:
                log.info("job %d resumes after epoch %d", self.job_id, start_epoch)
                self._sync_finished_epochs(s, start_epoch)

    def on_phase(self, *, phase: str) -> None:
        with self.db.session() as s:
            set_phase(s, job_id=self.job_id, phase=phase,
                      start_epoch=self.start_epoch if phase == "training" else None)

    def on_step(self, *, epoch: int, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if now - self._last_write < self.progress_seconds:
            return
        self._last_write = now
        with self.db.session() as s:
            update_progress(s, job_id=self.job_id, epoch=epoch - 1, step=step)  # epochs completed

    def on_epoch_end(self, *, epoch: int, metrics: dict[str, dict[str, float | None]]) -> None:
        with self.db.session() as s:
            record_metrics(s, run_id=self.run_id, epoch=epoch, metrics=metrics)
            update_progress(s, job_id=self.job_id, epoch=epoch, step=0, metrics=metrics)

    def on_checkpoint(self, *, path: Path, kind: str, epoch: int, metrics: dict[str, Any]) -> None:
        if kind not in CHECKPOINT_FILES:  # the final model is published with its model version
            return
        with self.db.session() as s:
            self._record_checkpoint(s, kind, path, epoch, metrics)

    def should_stop(self) -> bool:
        return self.lease.should_stop()

    def _record_checkpoint(self, session: Session, kind: str, path: Path, epoch: int, metrics: dict[str, Any]) -> None:
        stored = self.store.put_file(path, f"{self.key}/{path.name}")
        upsert_checkpoint(session, run_id=self.run_id, kind=kind, uri=stored.uri, size_bytes=stored.size_bytes,
                          sha256=stored.sha256, epoch=epoch, metrics=metrics)

    def _sync_finished_epochs(self, session: Session, start_epoch: int) -> None:
        by_epoch: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        lines = (self.folder / "metrics.jsonl").read_text().splitlines()
        for line in lines:  # a redone epoch appears twice: the later line wins
            entry = json.loads(line)
            epoch, split = entry.pop("epoch"), entry.pop("split")
            if epoch <= start_epoch:  # epochs count from 1: the first `start_epoch` are finished
                by_epoch[epoch][split] = entry
        for epoch, metrics in sorted(by_epoch.items()):
            record_metrics(session, run_id=self.run_id, epoch=epoch, metrics=metrics)
        for kind, name in CHECKPOINT_FILES.items():
            path = self.folder / name
            if path.is_file():
                ckpt = load_checkpoint(path)
                self._record_checkpoint(session, kind, path, checkpoint_epoch(ckpt), ckpt.get("metrics") or {})
