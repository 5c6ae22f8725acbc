"""Production settings: PostgreSQL and Redis (a database and a Redis index of this session's own), the API
under uvicorn and real `celery worker` processes. Training end to end, an evaluation job, and a worker
killed with SIGKILL in the middle of a job: a new worker finishes it from the last checkpoint with one
run, one model version and no duplicated metrics."""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from registry.db import Database
from registry.migrate import upgrade
from tests.integration.flow import file_of, submit, train_watch_and_promote
from tests.integration.services import delete_redis_keys, postgres_database, redis_database, session_tag
from tests.integration.stack import (
    ADMIN_KEY,
    cxr,
    finished,
    free_port,
    start_api,
    start_worker,
    wait_until_ready,
    watch_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("production")
    namespace = f"cxr-test-{session_tag()}"
    with postgres_database("cxr_e2e") as db_url, redis_database() as redis_url:
        upgrade(db_url)
        port = free_port()
        env = {"CXR_DATABASE_URL": db_url, "CXR_BROKER_URL": redis_url, "CXR_ARTIFACT_ROOT": str(tmp / "artifacts"),
               "CXR_QUEUE_NAMESPACE": namespace, "CXR_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
        cxr(["bootstrap"], env)  # shipped datasets and the default model, as a deployment's first start does
        api = start_api(env, port, tmp / "api.log")
        workers = [start_worker(env, tmp / "worker-a.log")]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"X-API-Key": ADMIN_KEY})
        state = {"client": client, "api": api, "workers": workers, "env": env, "tmp": tmp, "db_url": db_url,
                 "redis_url": redis_url, "artifacts": tmp / "artifacts"}
        try:
            wait_until_ready(client, 180, api, workers[0])
            workers[0].wait_for_output(" ready.", 180)
            assert client.get("/datasets/pneumoniamnist").status_code == 200
            yield state
        finally:
            client.close()
            for child in [api, *state["workers"]]:
                child.stop(signal.SIGTERM, timeout=30)
            delete_redis_keys(redis_url, namespace)


def test_training_end_to_end(stack):
    train_watch_and_promote(stack["client"], stack["artifacts"])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"model": "resnet999", "dataset": "pneumoniamnist"}, 422, "model"),
        ({"model": "simple_cnn", "dataset": "imagenet"}, 422, "dataset"),
        ({"model": "simple_cnn", "dataset": "pneumoniamnist", "params": {"epochs": -2}}, 422, "params.epochs"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field_and_nothing_is_queued(stack, body, status, field):
    client = stack["client"]
    before = client.get("/training-jobs").json()["total"]
    r = client.post("/training-jobs", json=body)
    assert r.status_code == status and field in [d["field"] for d in r.json()["details"]], r.text
    assert client.get("/training-jobs").json()["total"] == before
    assert redis.Redis.from_url(stack["redis_url"]).llen(f"{stack['env']['CXR_QUEUE_NAMESPACE']}.training") == 0


def test_a_dataset_path_that_does_not_exist_is_refused(stack):
    r = stack["client"].post("/datasets", json={"name": "ghost", "kind": "pneumoniamnist", "path": "ghost.npz"})
    assert r.status_code == 422 and "does not exist" in r.json()["message"]
    assert "ghost" not in [d["name"] for d in stack["client"].get("/datasets").json()["items"]]


def test_an_evaluation_job_reports_on_a_split(stack):
    client = stack["client"]
    # the shipped model that bootstrap imported: this test needs no other test's model
    r = client.post("/evaluation-jobs", json={"model": "pneumonia@production",
                                              "dataset": "pneumoniamnist", "split": "val",
                                              "params": {"max_samples": 100}})
    assert r.status_code == 202, r.text
    job, _ = watch_job(client, r.headers["location"], finished, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["metrics"]["n"] == 100 and 0 <= job["result"]["metrics"]["mean_auroc"] <= 1
    run = client.get(f"/runs/{job['run_id']}").json()
    assert {"report.json", "roc_val.png"} <= {a["name"] for a in run["artifacts"]}


def test_a_cancel_accepted_before_the_end_always_wins_and_one_after_it_is_409(stack):
    """Cancels at spread-out moments of short jobs (a second or two of work each): whatever the moment, an
    accepted cancel ends `cancelled` with no model version, and a refused one (409 already_finished)
    comes from a job that succeeded with its version. The spread is not a wait: any timing must hold."""
    client = stack["client"]
    outcomes = []
    for delay in (0.0, 0.3, 0.8, 1.5, 2.5):
        location = submit(client, epochs=1, max_train_samples=64, max_eval_samples=64)
        watch_job(client, location, lambda j: j["status"] != "queued", timeout=120)
        time.sleep(delay)
        asked = time.monotonic()
        r = client.post(f"{location}/cancel")
        job, _ = watch_job(client, location, finished, timeout=120)
        if r.status_code == 200:
            assert r.json()["status"] in ("cancelling", "cancelled"), r.text
            assert job["status"] == "cancelled" and job["model_version"] is None, job
            if job["run_id"] is not None:  # a cancel before the worker began leaves no run
                assert client.get(f"/runs/{job['run_id']}").json()["status"] == "cancelled"
            outcomes.append(("cancelled", round(time.monotonic() - asked, 2)))
        else:
            assert r.status_code == 409 and r.json()["error"] == "already_finished", r.text
            assert job["status"] == "succeeded" and job["model_version"] is not None, job
            outcomes.append(("too late", None))
        db = Database(stack["db_url"])
        with db.session() as s:
            versions = s.execute(text("SELECT count(*) FROM model_versions mv JOIN runs r ON mv.run_id = r.id "
                                      "WHERE r.job_id = :j"), {"j": job["id"]}).scalar()
        db.dispose()
        assert versions == (1 if job["status"] == "succeeded" else 0), (job, versions)
    print(f"cancel outcomes by delay after the job started (seconds to stop when accepted): {outcomes}")
    assert outcomes[0][0] == "cancelled"  # asked as it starts: it cannot have finished its work yet

    again = client.post(f"{location}/cancel")  # the last job has ended, one way or the other
    assert again.status_code == 409 and again.json()["error"] == "already_finished", again.text


def test_a_running_job_shows_cancelling_and_stops_within_seconds(stack):
    client = stack["client"]
    location = submit(client, epochs=20, max_train_samples=1024)
    watch_job(client, location, lambda j: j["progress"]["step"] >= 1 or finished(j), timeout=180)
    asked = time.monotonic()
    r = client.post(f"{location}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelling" and r.json()["cancel_requested"], r.text
    job, seen = watch_job(client, location, finished, timeout=60)
    latency = time.monotonic() - asked
    assert job["status"] == "cancelled" and job["model_version"] is None, job
    assert job["progress"]["epoch"] < 20
    print(f"cancelled {latency:.2f} s after the request; states seen: {[s['status'] for s in seen]}")
    assert latency < 10, latency  # read every half second, checked every step (not at the 15 s heartbeat)


def test_a_worker_killed_mid_job_is_replaced_and_the_job_resumes(stack):
    client, epochs = stack["client"], 5
    location = submit(client, epochs=epochs, max_train_samples=512)
    job, _ = watch_job(client, location, lambda j: j["progress"]["epoch"] >= 2 or finished(j), timeout=180)
    assert job["status"] == "running", job
    first = stack["workers"][0]
    first.stop(signal.SIGKILL)
    killed_at = client.get(location).json()
    assert killed_at["status"] == "running" and killed_at["progress"]["epoch"] < epochs

    second = start_worker(stack["env"], stack["tmp"] / "worker-b.log")
    stack["workers"].append(second)
    job, _ = watch_job(client, location, finished, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2 and job["worker"].endswith(f":{second.pid}")

    run = client.get(f"/runs/{job['run_id']}").json()
    assert run["resumed_from_epoch"] >= 2, run["resumed_from_epoch"]  # from the last checkpoint, not from scratch
    for split, names in run["metrics"].items():
        for name, points in names.items():
            assert [p["epoch"] for p in points] == list(range(1, epochs + 1)), (split, name)
    final = next(c for c in run["checkpoints"] if c["kind"] == "final")
    assert hashlib.sha256(file_of(final["uri"]).read_bytes()).hexdigest() == final["sha256"]

    db = Database(stack["db_url"])
    with db.session() as s:
        runs = s.execute(text("SELECT count(*) FROM runs WHERE job_id = :j"), {"j": job["id"]}).scalar()
        versions = s.execute(text("SELECT count(*) FROM model_versions WHERE run_id = :r"), {"r": run["id"]}).scalar()
        duplicates = s.execute(text("SELECT count(*) FROM (SELECT epoch, split, name FROM run_metrics WHERE run_id = :r "
                                    "GROUP BY epoch, split, name HAVING count(*) > 1) d"), {"r": run["id"]}).scalar()
    db.dispose()
    assert (runs, versions, duplicates) == (1, 1, 0)
