"""The lease thread (cancellation, take-over) and the orphan sweep, with a real broker (kombu's
SQLAlchemy transport on a SQLite file, the embedded default)."""

from __future__ import annotations

import threading
import time

import pytest
from celery import Celery
from kombu import Connection

from registry.errors import AlreadyFinished, CancelRequested
from registry.jobs import begin_publishing, claim_job, finish_job, get_job, request_cancel
from registry.queue import celery_config, queue_names
from tests.worker.support import new_job
from worker.lease import Lease
from worker.recovery import sweep


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_lease_thread_brings_back_a_cancel_request(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker=ctx.name, device="cpu", lease_seconds=1)
    with Lease(ctx.db, job_id=job_id, worker=ctx.name, lease_seconds=1, interval=0.05) as lease:
        time.sleep(0.3)
        assert not lease.should_stop()
        with ctx.db.session() as s:
            request_cancel(s, job_id=job_id)
        assert _wait(lease.should_stop) and lease.cancel_requested.is_set() and not lease.lost.is_set()
    with ctx.db.session() as s:  # renewed all along, although the lease was one second
        assert get_job(s, job_id=job_id).status == "running"
        finish_job(s, job_id=job_id, status="cancelled", worker=ctx.name)


def test_the_lease_thread_notices_a_take_over(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker="slow:1", device="cpu", lease_seconds=-1)
        claim_job(s, job_id=job_id, worker="fast:2", device="cpu", lease_seconds=60)
    with Lease(ctx.db, job_id=job_id, worker="slow:1", lease_seconds=60, interval=0.05) as lease:
        assert _wait(lease.lost.is_set)


def _messages(broker_url: str, queue: str) -> list[int]:
    with Connection(broker_url) as conn:
        q = conn.SimpleQueue(queue)
        ids = []
        while True:
            try:
                message = q.get(timeout=0.5)
            except q.Empty:
                break
            ids.append(message.payload[0][0])  # celery protocol 2: (args, kwargs, embed)
            message.ack()
        q.close()
    return ids


def test_the_sweep_sends_orphans_once_and_retries_when_the_broker_is_down(ctx, pneumonia, tmp_path):
    dead, unsent = new_job(ctx, pneumonia), new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=dead, worker="dead:1", device="cpu", lease_seconds=-1)

    down = ctx.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "broker_connect_timeout": 0.5})
    broken = Celery("test-down", set_as_current=False)
    broken.conf.update(celery_config(down))
    started = time.monotonic()
    sent = sweep(ctx.db, lambda kind, job_id, task_id: broken.send_task("cxr.train", args=[job_id], task_id=task_id),
                 unsent_after_seconds=0)
    assert sent == [] and time.monotonic() - started < 20
    with ctx.db.session() as s:  # still unsent, so the next sweep tries again
        assert get_job(s, job_id=dead).task_id is None and get_job(s, job_id=unsent).task_id is None

    up = ctx.settings.model_copy(update={"broker_url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"})
    broker = Celery("test-up", set_as_current=False)
    broker.conf.update(celery_config(up))

    def send(kind, job_id, task_id):
        broker.send_task("cxr.train", args=[job_id], task_id=task_id)

    assert sweep(ctx.db, send, unsent_after_seconds=0) == [dead, unsent]
    assert sweep(ctx.db, send, unsent_after_seconds=0) == []  # sent once, not at every sweep
    assert _messages(up.broker_url, queue_names(up)["cxr.train"]) == [dead, unsent]
    with ctx.db.session() as s:
        back = get_job(s, job_id=dead)
    assert (back.status, back.worker) == ("queued", None) and back.task_id is not None


def test_the_cancel_flag_is_read_between_heartbeats(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker=ctx.name, device="cpu", lease_seconds=600)
    # the next heartbeat is ten minutes away: only the half-second poll can bring the cancel back
    with Lease(ctx.db, job_id=job_id, worker=ctx.name, lease_seconds=600, interval=300, poll=0.1) as lease:
        with ctx.db.session() as s:
            request_cancel(s, job_id=job_id)
        assert _wait(lease.should_stop, timeout=30) and lease.cancel_requested.is_set()
    with ctx.db.session() as s:
        finish_job(s, job_id=job_id, status="cancelled", worker=ctx.name)


def test_a_cancel_accepted_first_keeps_the_worker_from_recording_a_result(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker=ctx.name, device="cpu", lease_seconds=600)
    with ctx.db.session() as s:
        assert request_cancel(s, job_id=job_id).cancel_requested
    with pytest.raises(CancelRequested), ctx.db.session() as s:
        begin_publishing(s, job_id=job_id, worker=ctx.name)
        finish_job(s, job_id=job_id, status="succeeded", worker=ctx.name, result={"model_version": "x:1"})
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
    assert (job.status, job.cancel_requested, job.result) == ("running", True, {})


def test_a_cancel_racing_a_result_being_recorded_waits_for_it_and_is_told_it_is_too_late(ctx, pneumonia):
    job_id = new_job(ctx, pneumonia)
    with ctx.db.session() as s:
        claim_job(s, job_id=job_id, worker=ctx.name, device="cpu", lease_seconds=600)
    answer: dict[str, object] = {}

    def cancel() -> None:
        try:
            with ctx.db.session() as s:
                request_cancel(s, job_id=job_id)
            answer["outcome"] = "accepted"
        except AlreadyFinished as exc:
            answer["outcome"] = exc

    thread = threading.Thread(target=cancel)
    with ctx.db.session() as s:  # the worker's publishing transaction is open while the cancel arrives
        begin_publishing(s, job_id=job_id, worker=ctx.name)
        thread.start()
        thread.join(0.5)  # the cancel is blocked on the publishing transaction, however long it waits
        assert thread.is_alive()
        finish_job(s, job_id=job_id, status="succeeded", worker=ctx.name, result={"model_version": "x:1"})
    thread.join(30)
    assert isinstance(answer["outcome"], AlreadyFinished) and "already succeeded" in str(answer["outcome"])
    with ctx.db.session() as s:
        job = get_job(s, job_id=job_id)
    assert (job.status, job.cancel_requested) == ("succeeded", False)
