"""Job queries: claim with a lease, heartbeat, cancel, progress, and what the sweeper sends again."""

from __future__ import annotations

import threading

import pytest

from registry.errors import Conflict, NotFound
from registry.jobs import (
    Claim,
    claim_job,
    create_job,
    finish_job,
    get_job,
    hand_back,
    heartbeat,
    list_jobs,
    release_task_id,
    request_cancel,
    requeue_lapsed,
    reserve_unsent,
    set_phase,
    set_task_id,
    update_progress,
)
from registry.runs import get_or_create_run, get_run


def _job(db, dataset, **kw):
    with db.session() as s:
        return create_job(s, kind="train", model="simple_cnn", dataset_id=dataset.id, params={"epochs": 2},
                          epochs=2, **kw)


def _claim(db, job_id, worker="w1", lease=60.0):
    with db.session() as s:
        return claim_job(s, job_id=job_id, worker=worker, device="cpu", lease_seconds=lease)


def test_a_new_job_is_queued_with_its_dataset_name(db, dataset):
    job = _job(db, dataset, register_as="pneumonia")
    assert (job.status, job.kind, job.dataset_name, job.attempts) == ("queued", "train", "pneumo", 0)
    assert job.task_id is None and job.run_id is None and job.model_version is None


def test_claim_grants_once_while_the_lease_lives(db, dataset):
    job = _job(db, dataset)
    first = _claim(db, job.id, "w1")
    assert first.claim is Claim.GRANTED
    assert (first.job.status, first.job.worker, first.job.attempts) == ("running", "w1", 1)
    assert first.job.lease_expires_at is not None and first.job.started_at is not None
    # a duplicate delivery, to another worker or to the same one, must not start a second training
    assert _claim(db, job.id, "w2").claim is Claim.BUSY
    assert _claim(db, job.id, "w1").claim is Claim.BUSY
    assert get_job_attempts(db, job.id) == 1


def get_job_attempts(db, job_id):
    with db.session() as s:
        return get_job(s, job_id=job_id).attempts


def test_a_lapsed_lease_is_taken_over(db, dataset):
    job = _job(db, dataset)
    _claim(db, job.id, "dead", lease=-1)  # its worker died: the lease is already in the past
    taken = _claim(db, job.id, "w2")
    assert taken.claim is Claim.GRANTED
    assert (taken.job.worker, taken.job.attempts) == ("w2", 2)
    with db.session() as s, pytest.raises(Conflict, match="no longer held by dead"):
        heartbeat(s, job_id=job.id, worker="dead", lease_seconds=60)


def test_heartbeat_renews_the_lease_and_reports_cancellation(db, dataset):
    job = _job(db, dataset)
    before = _claim(db, job.id, "w1", lease=5).job.lease_expires_at
    with db.session() as s:
        assert heartbeat(s, job_id=job.id, worker="w1", lease_seconds=600) is False
    with db.session() as s:
        assert get_job(s, job_id=job.id).lease_expires_at > before
        cancelled = request_cancel(s, job_id=job.id)
    assert cancelled.status == "running" and cancelled.cancel_requested  # running: only a flag
    with db.session() as s:
        assert heartbeat(s, job_id=job.id, worker="w1", lease_seconds=600) is True


def test_finished_jobs_are_not_claimed_again(db, dataset):
    job = _job(db, dataset)
    _claim(db, job.id)
    with db.session() as s:
        finish_job(s, job_id=job.id, status="succeeded", result={"ok": 1})
    again = _claim(db, job.id, "w2")
    assert again.claim is Claim.FINISHED and again.job.worker == "w1" and again.job.attempts == 1


def test_cancelling_a_queued_job_ends_it_at_once(db, dataset):
    job = _job(db, dataset)
    with db.session() as s:
        cancelled = request_cancel(s, job_id=job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert _claim(db, job.id).claim is Claim.FINISHED
    with db.session() as s, pytest.raises(Conflict, match="already cancelled"):
        request_cancel(s, job_id=job.id)


def test_a_cancel_flag_on_an_orphaned_job_ends_it_at_its_next_claim(db, dataset):
    job = _job(db, dataset)
    _claim(db, job.id, "dead", lease=-1)
    with db.session() as s:
        get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=dataset.id, config={},
                          artifact_prefix="file:///x", device="cpu")
        request_cancel(s, job_id=job.id)
    result = _claim(db, job.id, "w2")
    assert result.claim is Claim.CANCELLED and result.job.status == "cancelled"
    with db.session() as s:  # its run is closed with it
        assert get_run(s, run_id=result.job.run_id).status == "cancelled"


def test_cancel_checks_the_kind(db, dataset):
    job = _job(db, dataset)
    with db.session() as s, pytest.raises(NotFound):
        request_cancel(s, job_id=job.id, kind="evaluate")
    with db.session() as s, pytest.raises(NotFound):
        request_cancel(s, job_id=job.id + 1000)


def test_progress_is_written(db, dataset):
    job = _job(db, dataset)
    _claim(db, job.id)
    with db.session() as s:
        update_progress(s, job_id=job.id, epoch=1, step=3, steps=8, metrics={"val": {"loss": 0.5}}, device="cuda")
    with db.session() as s:
        got = get_job(s, job_id=job.id)
    assert (got.epoch, got.epochs, got.step, got.steps, got.device) == (1, 2, 3, 8, "cuda")
    assert got.latest_metrics == {"val": {"loss": 0.5}}


def test_requeue_lapsed_takes_only_dead_workers_jobs_and_only_once(db, dataset):
    dead, alive, queued = _job(db, dataset), _job(db, dataset), _job(db, dataset)
    _claim(db, dead.id, "dead", lease=-1)
    _claim(db, alive.id, "alive", lease=600)
    with db.session() as s:
        assert requeue_lapsed(s) == [dead.id]
    with db.session() as s:
        assert requeue_lapsed(s) == []
        back = get_job(s, job_id=dead.id)
        assert (back.status, back.worker, back.task_id, back.attempts) == ("queued", None, None, 1)
        assert back.lease_expires_at is not None and back.phase is None  # the lapsed lease shows it stalled
        assert get_job(s, job_id=alive.id).status == "running"
        assert get_job(s, job_id=queued.id).status == "queued"


def test_a_claim_and_each_heartbeat_say_when_the_worker_was_last_alive_and_what_it_does(db, dataset):
    job = _job(db, dataset)
    claimed = _claim(db, job.id, "w1", lease=600).job
    assert claimed.phase == "preparing" and claimed.heartbeat_at is not None and claimed.start_epoch == 0
    with db.session() as s:
        heartbeat(s, job_id=job.id, worker="w1", lease_seconds=600)
        set_phase(s, job_id=job.id, phase="training", start_epoch=2)
    with db.session() as s:
        beat = get_job(s, job_id=job.id)
        assert beat.heartbeat_at >= claimed.heartbeat_at and (beat.phase, beat.start_epoch) == ("training", 2)
        assert beat.phase_started_at >= claimed.phase_started_at
        with pytest.raises(ValueError, match="unknown phase"):
            set_phase(s, job_id=job.id, phase="napping")
        request_cancel(s, job_id=job.id)
        done = finish_job(s, job_id=job.id, status="cancelled", worker="w1")
    assert done.phase is None and done.stop_reason == "cancelled on request after 0 of 2 epochs"
    failed = _job(db, dataset)
    _claim(db, failed.id, "w1", lease=600)
    with db.session() as s:
        gone = finish_job(s, job_id=failed.id, status="failed", error="the data is gone", worker="w1")
    assert gone.stop_reason == "failed after 0 of 2 epochs: the data is gone"


def test_reserve_unsent_gives_each_job_one_task_id(db, dataset):
    unsent, sent = _job(db, dataset), _job(db, dataset)
    with db.session() as s:
        set_task_id(s, job_id=sent.id, task_id="t-1")
    with db.session() as s:
        assert reserve_unsent(s, older_than_seconds=3600) == []  # too young: the API is still sending it
    with db.session() as s:
        reserved = reserve_unsent(s, older_than_seconds=0)
    assert [(job_id, kind) for job_id, kind, _ in reserved] == [(unsent.id, "train")]
    with db.session() as s:
        assert reserve_unsent(s, older_than_seconds=0) == []
        release_task_id(s, job_id=unsent.id, task_id=reserved[0][2])  # the send failed
    with db.session() as s:
        assert [job_id for job_id, _, _ in reserve_unsent(s, older_than_seconds=0)] == [unsent.id]


def test_list_filters_by_kind_and_status_newest_first(db, dataset):
    jobs = [_job(db, dataset) for _ in range(3)]
    with db.session() as s:
        create_job(s, kind="evaluate", model="m:1", dataset_id=dataset.id, params={}, split="test")
        request_cancel(s, job_id=jobs[0].id)
    with db.session() as s:
        page, total = list_jobs(s, kind="train", limit=2)
        assert total == 3 and [j.id for j in page] == [jobs[2].id, jobs[1].id]
        page, total = list_jobs(s, kind="train", limit=2, offset=2)
        assert [j.id for j in page] == [jobs[0].id]
        page, total = list_jobs(s, kind="train", status="cancelled")
        assert total == 1 and page[0].id == jobs[0].id
        assert list_jobs(s, kind="evaluate")[1] == 1


def test_two_deliveries_racing_for_a_job_give_one_claim(db, dataset):
    job = _job(db, dataset)
    barrier, results = threading.Barrier(4), []

    def deliver(name):
        barrier.wait()
        results.append(_claim(db, job.id, name).claim)

    threads = [threading.Thread(target=deliver, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Claim.GRANTED, Claim.BUSY, Claim.BUSY, Claim.BUSY])
    assert get_job_attempts(db, job.id) == 1


def test_a_heartbeat_after_the_holder_finished_the_job_is_not_a_lost_lease(db, dataset):
    """The worker commits its result, then its heartbeat thread ticks once more before it stops."""
    job = _job(db, dataset)
    _claim(db, job.id, worker="w1")
    with db.session() as s:
        finish_job(s, job_id=job.id, status="succeeded", worker="w1")
    with db.session() as s:
        assert heartbeat(s, job_id=job.id, worker="w1", lease_seconds=60) is False
    with db.session() as s, pytest.raises(Conflict):
        heartbeat(s, job_id=job.id, worker="w2", lease_seconds=60)


def test_a_stopping_worker_hands_its_job_back_unsent_and_only_its_own(db, dataset):
    job = _job(db, dataset)
    _claim(db, job.id, worker="w1")
    with db.session() as s, pytest.raises(Conflict, match="not held by w2"):
        hand_back(s, job_id=job.id, worker="w2")
    with db.session() as s:
        set_task_id(s, job_id=job.id, task_id="t1")
        hand_back(s, job_id=job.id, worker="w1")
    with db.session() as s:
        back = get_job(s, job_id=job.id)
        assert (back.status, back.worker, back.task_id, back.lease_expires_at) == ("queued", None, None, None)
        assert job.id in [j for j, _, _ in reserve_unsent(s, older_than_seconds=0)]  # a sweep sends it again
    assert _claim(db, job.id, worker="w2").claim is Claim.GRANTED
