"""Production settings: PostgreSQL and Redis (a database and a Redis index of this session's own), the API
under uvicorn and real `celery worker` processes. Training end to end, an evaluation job, and a worker
killed with SIGKILL in the middle of a job: a new worker finishes it from the last checkpoint with one
run, one model version and no duplicated metrics."""

from __future__ import annotations

import hashlib
import signal
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
            assert [p["epoch"] for p in points] == list(range(epochs)), (split, name)
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
