"""`InferencePool.beside`: a job's independent step runs on an idle pool thread, or in the job's own thread when
none is idle, and its result or exception comes back through `join`."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.serving.pool import InferencePool


def _job(pool: InferencePool, fail: bool = False, wait_started: bool = False) -> tuple[str, str, str]:
    started = threading.Event()

    def step() -> str:
        started.set()
        if fail:
            raise ValueError("the step failed")
        return threading.current_thread().name

    join = pool.beside(step)
    if wait_started:
        assert started.wait(10), "an idle worker never took the step up"
    return threading.current_thread().name, join(), "joined"


def test_a_step_runs_on_an_idle_worker_beside_the_job() -> None:
    pool = InferencePool(2)
    try:
        job_thread, step_thread, _ = asyncio.run(pool.run(_job, pool, wait_started=True))
        assert job_thread != step_thread and step_thread.startswith("cxr-infer")
    finally:
        pool.shutdown()


def test_with_no_idle_worker_the_step_runs_in_the_job_thread() -> None:
    pool = InferencePool(1)  # the job holds the only worker
    try:
        job_thread, step_thread, _ = asyncio.run(pool.run(_job, pool))
        assert job_thread == step_thread
    finally:
        pool.shutdown()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_steps_exception_comes_back_through_join(workers: int) -> None:
    pool = InferencePool(workers)
    try:
        with pytest.raises(ValueError, match="the step failed"):
            asyncio.run(pool.run(_job, pool, fail=True, wait_started=workers == 2))
    finally:
        pool.shutdown()
