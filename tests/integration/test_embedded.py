"""The embedded default, as `make run` starts it: `cxr db upgrade`, `cxr bootstrap`, then `cxr serve`
(the API and a real `celery worker` process) on a SQLite registry and kombu's SQLAlchemy broker on a
SQLite file. Training end to end, cancellation within an epoch, and a clean stop of the supervisor."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.flow import submit, train_watch_and_promote
from tests.integration.stack import (
    ADMIN_KEY,
    FAST_WORKER_ENV,
    Child,
    cxr,
    finished,
    free_port,
    wait_until_ready,
    watch_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {**FAST_WORKER_ENV, "CXR_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
           "CXR_BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}", "CXR_ARTIFACT_ROOT": str(tmp / "artifacts"),
           "CXR_PORT": str(port), "CXR_QUEUE_NAMESPACE": f"t{port}", "CXR_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    cxr(["db", "upgrade"], env)
    serve = Child("serve", [sys.executable, "-m", "cxr", "serve", "--grace", "20"], env, tmp / "serve.log")
    bootstrap = cxr(["bootstrap"], env)  # while the API and the worker start
    assert "dataset pneumoniamnist: registered" in bootstrap
    assert "admin key bootstrap-admin: installed from CXR_BOOTSTRAP_ADMIN_KEY" in bootstrap
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"X-API-Key": ADMIN_KEY})
    try:
        wait_until_ready(client, 180, serve)
        serve.wait_for_output(" ready.", 180)  # celery's own line once the worker consumes
        yield {"client": client, "serve": serve, "artifacts": tmp / "artifacts", "env": env}
    finally:
        client.close()
        serve.stop(signal.SIGTERM, timeout=40)  # only if a test left it running


def test_bootstrap_is_idempotent(embedded):
    again = cxr(["bootstrap"], embedded["env"])
    assert "dataset pneumoniamnist: already registered" in again and ": registered" not in again
    assert "admin key bootstrap-admin: already installed" in again
    names = [d["name"] for d in embedded["client"].get("/datasets").json()["items"]]
    assert {"pneumoniamnist", "chestmnist-nih1000", "kermany-sample", "nih-sample"} <= set(names)


def test_training_end_to_end(embedded):
    train_watch_and_promote(embedded["client"], embedded["artifacts"])


def test_cancelling_a_running_job_stops_it_within_an_epoch(embedded):
    client = embedded["client"]
    location = submit(client, epochs=30, max_train_samples=1024)  # epochs far longer than the heartbeat
    job, _ = watch_job(client, location, lambda j: j["progress"]["epoch"] >= 1 or finished(j), timeout=180)
    assert job["status"] == "running", job
    asked_at, epoch_at_cancel = time.monotonic(), job["progress"]["epoch"]
    r = client.post(f"{location}/cancel")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job, _ = watch_job(client, location, finished, timeout=120)
    latency = time.monotonic() - asked_at
    assert job["status"] == "cancelled" and job["error"] is None
    assert job["progress"]["epoch"] <= epoch_at_cancel + 1, (epoch_at_cancel, job["progress"])
    run = client.get(f"/runs/{job['run_id']}").json()
    assert run["status"] == "cancelled" and job["model_version"] is None
    print(f"cancelled {latency:.1f} s after the request, at epoch {job['progress']['epoch']} step "
          f"{job['progress']['step']} (requested during epoch {epoch_at_cancel})")


def _worker_child(serve: Child) -> int | None:
    """The pid of `cxr serve`'s worker child (None while it has none)."""
    children = Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()
    for pid in children:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"worker" in argv and b"cxr" in argv:
            return int(pid)
    return None


def test_a_killed_worker_is_started_again_while_the_api_keeps_serving(embedded):
    serve, client = embedded["serve"], embedded["client"]
    first = _worker_child(serve)
    assert first is not None
    readies = serve.output().count(" ready.")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while (_worker_child(serve) in (None, first) or serve.output().count(" ready.") == readies):
        assert client.get("/health/live").status_code == 200  # the API answers all along
        assert serve.proc.poll() is None and time.monotonic() < deadline, serve.output()[-3000:]
        time.sleep(0.2)
    assert f"worker (pid {first}) exited with status -9; starting it again in 1 s" in serve.output()
    assert client.get("/health/ready").status_code == 200
    # the new worker takes jobs
    job, _ = watch_job(client, submit(client, epochs=1, max_train_samples=64, max_eval_samples=64), finished,
                       timeout=180)
    assert job["status"] == "succeeded" and job["worker"].endswith(f":{_worker_child(serve)}"), job


def test_serve_stops_both_processes_on_sigterm(embedded):
    serve: Child = embedded["serve"]
    assert serve.stop(signal.SIGTERM, timeout=60) == 0
    out = serve.output()
    assert "Application shutdown complete" in out and "Warm shutdown" in out and "killing it" not in out
