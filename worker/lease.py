"""A claimed job's lease, renewed from a background thread while the task works.

The thread also brings back what the training loop must react to: a cancellation request (read every
`poll` seconds, half a second by default, between the heartbeats that renew the lease), or the news
that the lease was lost (another worker took the job over); a stopping worker says so too. `fit` asks
`should_stop()` between steps; it reads events, never the database, so the check costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Self

from registry.db import Database
from registry.errors import Conflict
from registry.jobs import heartbeat, is_cancel_requested

log = logging.getLogger(__name__)

# Set when this worker process was asked to stop (SIGTERM: Celery's warm shutdown): the running job stops at
# its next step check and is handed back, to be resumed elsewhere from its last epoch's checkpoint.
shutting_down = threading.Event()


class Lease:
    def __init__(self, db: Database, *, job_id: int, worker: str, lease_seconds: float, interval: float,
                 poll: float = 0.5) -> None:
        self.db, self.job_id, self.worker = db, job_id, worker
        self.lease_seconds, self.interval, self.poll = lease_seconds, interval, min(poll, interval)
        self.cancel_requested = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def should_stop(self) -> bool:
        return self.cancel_requested.is_set() or self.lost.is_set() or shutting_down.is_set()

    def _renew(self) -> None:
        next_beat = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, min(self.poll, next_beat - time.monotonic()))):
            beat = time.monotonic() >= next_beat
            if beat:  # a failed heartbeat is tried again at the next one, as before
                next_beat = time.monotonic() + self.interval
            try:
                with self.db.session() as session:
                    if beat:
                        cancel = heartbeat(session, job_id=self.job_id, worker=self.worker,
                                           lease_seconds=self.lease_seconds)
                    else:
                        cancel = is_cancel_requested(session, job_id=self.job_id)
            except Conflict as exc:
                log.warning("lease lost: %s", exc)
                self.lost.set()
                return
            except Exception as exc:  # noqa: BLE001 - the database may come back before the lease lapses
                if beat:  # a failed read of the flag alone is not worth a warning every half second
                    log.warning("renewing the lease of job %d failed, will retry: %s", self.job_id, exc)
                continue
            if cancel and not self.cancel_requested.is_set():
                log.info("job %d: cancellation requested", self.job_id)
                self.cancel_requested.set()
