"""Orphan recovery: send again the jobs whose worker died (lease lapsed) and those written but never
sent (the broker was down when the API took them, or the API died before sending).

Every worker sweeps at start and then every `sweep_seconds`, from a background thread (the solo pool's
main thread is busy training). The registry's conditional updates make two sweepers never send the
same job twice; a duplicate that slips through anyway is a no-op thanks to the lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from registry.db import Database
from registry.jobs import release_task_id, requeue_lapsed, reserve_unsent

log = logging.getLogger(__name__)

Send = Callable[[str, int, str], None]  # (job kind, job id, task id)


def sweep(db: Database, send: Send, *, unsent_after_seconds: float) -> list[int]:
    """One pass; returns the ids of the jobs sent."""
    with db.session() as s:
        lapsed = requeue_lapsed(s)
    if lapsed:
        log.warning("jobs %s lost their worker (lease lapsed); sending them again", lapsed)
    with db.session() as s:
        reserved = reserve_unsent(s, older_than_seconds=unsent_after_seconds)
    sent = []
    for job_id, kind, task_id in reserved:
        try:
            send(kind, job_id, task_id)
        except Exception as exc:  # noqa: BLE001 - the broker may be down: the next sweep tries again
            log.warning("could not send job %d (%s); will retry", job_id, exc)
            with db.session() as s:
                release_task_id(s, job_id=job_id, task_id=task_id)
        else:
            sent.append(job_id)
    if sent:
        log.info("sent jobs %s", sent)
    return sent


class Sweeper:
    """Runs `sweep` now and then every `interval` seconds until stopped."""

    def __init__(self, db: Database, send: Send, *, interval: float, unsent_after_seconds: float) -> None:
        self.db, self.send, self.interval, self.unsent_after = db, send, interval, unsent_after_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orphan-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            try:
                sweep(self.db, self.send, unsent_after_seconds=self.unsent_after)
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: try again later
                log.warning("orphan sweep failed, will retry: %s", exc)
            if self._stop.wait(self.interval):
                return
