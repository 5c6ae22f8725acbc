"""Faults against real processes: `cxr api` and `cxr worker` on a PostgreSQL and a Redis of this test's own,
which it stops and starts again. Redis down: predictions go on, a submission answers 503 and its job is
saved and run once Redis is back. PostgreSQL down: not ready, predictions go on, writes answer 503 and
resume after. SIGTERM to a worker: the job is handed back and resumed elsewhere from its checkpoint.
SIGTERM to the API: a request in flight is answered before it exits. Each checks that no accepted job, run,
metric or model version is lost or duplicated."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from registry.db import Database
from tests.integration.flow import submit
from tests.integration.services import LocalPostgres, LocalRedis
from tests.integration.stack import (
    ADMIN_KEY,
    Child,
    cxr,
    finished,
    free_port,
    start_worker,
    wait_until_ready,
    watch_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "samples" / "person1951_bacteria_4882.jpeg"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("faults")
    pg, redis = LocalPostgres(free_port()), LocalRedis(free_port(), tmp)
    children: list[Child] = []
    try:
        pg.init()
        pg.start()
        redis.start()
        port = free_port()
        env = {"CXR_DATABASE_URL": pg.url, "CXR_BROKER_URL": redis.url, "CXR_ARTIFACT_ROOT": str(tmp / "artifacts"),
               "CXR_QUEUE_NAMESPACE": "faults", "CXR_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "CXR_HOST": "127.0.0.1",
               "CXR_PORT": str(port), "CXR_BROKER_CONNECT_TIMEOUT": "1", "CXR_SHUTDOWN_GRACE_SECONDS": "20",
               "OMP_NUM_THREADS": "1"}
        cxr(["db", "upgrade"], env)
        cxr(["bootstrap"], env)
        api = Child("api", [sys.executable, "-m", "cxr", "api"], env, tmp / "api.log")
        worker = start_worker(env, tmp / "worker-a.log")
        children += [api, worker]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"X-API-Key": ADMIN_KEY})
        wait_until_ready(client, 180, api, worker)
        worker.wait_for_output(" ready.", 180)
        yield {"client": client, "api": api, "workers": children[1:], "children": children, "env": env,
               "tmp": tmp, "pg": pg, "redis": redis}
        client.close()
    finally:
        for child in children:
            child.stop(signal.SIGTERM, timeout=30)
        redis.stop()
        pg.remove()


def predict(client: httpx.Client) -> httpx.Response:
    return client.post("/predict", files={"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")})


def counts(db_url: str, job_id: int) -> tuple[int, int, int]:
    """Runs of the job, model versions of its run, and (epoch, split, name) metric rows written twice."""
    db = Database(db_url)
    with db.session() as s:
        runs = s.execute(text("SELECT count(*) FROM runs WHERE job_id = :j"), {"j": job_id}).scalar()
        versions = s.execute(text("SELECT count(*) FROM model_versions mv JOIN runs r ON mv.run_id = r.id "
                                  "WHERE r.job_id = :j"), {"j": job_id}).scalar()
        twice = s.execute(text("SELECT count(*) FROM (SELECT 1 FROM run_metrics m JOIN runs r ON m.run_id = r.id "
                               "WHERE r.job_id = :j GROUP BY m.epoch, m.split, m.name HAVING count(*) > 1) d"),
                          {"j": job_id}).scalar()
    db.dispose()
    return runs, versions, twice


def test_redis_down_predictions_go_on_and_a_refused_submission_is_kept_and_run_once(stack):
    client, redis = stack["client"], stack["redis"]
    before = client.get("/training-jobs").json()["total"]
    redis.stop()
    try:
        assert predict(client).status_code == 200
        r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumoniamnist",
                                                "params": {"epochs": 1, "batch_size": 32, "max_train_samples": 64,
                                                           "max_eval_samples": 64}})
        assert r.status_code == 503 and r.json()["error"] == "queue_unavailable", r.text
        assert "do not submit it again" in r.json()["message"] and r.headers["retry-after"]
        saved = r.headers["location"]
        assert client.get(saved).json()["status"] == "queued"
    finally:
        redis.start()  # returns once it answers PING
    again = submit(client, epochs=1, max_train_samples=64, max_eval_samples=64)
    for location in (saved, again):  # the saved one is sent by a worker's sweep, the other at once
        job, _ = watch_job(client, location, finished, timeout=120)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert counts(stack["env"]["CXR_DATABASE_URL"], job["id"]) == (1, 1, 0)
    assert client.get("/training-jobs").json()["total"] == before + 2


def test_postgres_down_not_ready_predictions_go_on_writes_resume(stack):
    client, pg = stack["client"], stack["pg"]
    pg.stop()
    try:
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["registry"] is False
        assert [predict(client).status_code for _ in range(3)] == [200, 200, 200]
        r = client.post("/datasets", json={"name": "kermany", "kind": "folder", "path": "kermany-sample"})
        assert r.status_code == 503 and r.json()["error"] == "registry_unavailable", r.text
        assert r.headers["retry-after"]
    finally:
        pg.start()
    wait_until_ready(client, 30, stack["api"])
    r = client.post("/datasets", json={"name": "kermany", "kind": "folder", "path": "kermany-sample"})
    assert r.status_code == 201, r.text
    assert [d["name"] for d in client.get("/datasets").json()["items"]].count("kermany") == 1


def test_sigterm_to_a_worker_hands_its_job_back_and_another_resumes_it(stack):
    client, epochs = stack["client"], 3
    location = submit(client, epochs=epochs, max_train_samples=384)
    job, _ = watch_job(client, location, lambda j: j["progress"]["epoch"] >= 1 or finished(j), timeout=120)
    assert job["status"] == "running", job
    first = stack["workers"][0]
    asked = time.monotonic()
    assert first.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - asked < 15 and "handed back" in first.output()
    job = client.get(location).json()
    assert job["status"] == "queued" and job["progress"]["epoch"] < epochs, job

    second = start_worker(stack["env"], stack["tmp"] / "worker-b.log")
    stack["children"].append(second)
    job, _ = watch_job(client, location, finished, timeout=180)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2 and job["worker"].endswith(f":{second.pid}")
    run = client.get(f"/runs/{job['run_id']}").json()
    assert run["resumed_from_epoch"] >= 1, run["resumed_from_epoch"]  # from the kept checkpoint
    for split, names in run["metrics"].items():
        for name, points in names.items():
            assert [p["epoch"] for p in points] == list(range(1, epochs + 1)), (split, name)
    assert counts(stack["env"]["CXR_DATABASE_URL"], job["id"]) == (1, 1, 0)


def test_sigterm_to_the_api_answers_the_request_in_flight_first(stack):
    api: Child = stack["api"]
    boundary = "cxr-slow-upload"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{SAMPLE.name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    image, tail = SAMPLE.read_bytes(), f"\r\n--{boundary}--\r\n".encode()
    started, refusing = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield head + image[:1000]
        started.set()
        refusing.wait(60)  # the rest is sent once the API, told to stop, refuses new connections
        yield image[1000:] + tail

    answer: dict[str, Any] = {}

    def send() -> None:
        answer["r"] = httpx.post(stack["client"].base_url.join("/predict"), content=slow_body(), timeout=60,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    thread = threading.Thread(target=send)
    thread.start()
    assert started.wait(30)
    api.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    while True:  # shutting down: no new connections, while the upload goes on
        try:
            httpx.get(stack["client"].base_url.join("/health/live"), timeout=2)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the API still takes new connections 20 s after SIGTERM"
        time.sleep(0.05)
    assert thread.is_alive()
    refusing.set()
    thread.join(60)
    assert answer["r"].status_code == 200, answer["r"].text
    assert answer["r"].json()["model"]["name"] == "pneumonia"
    assert api.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Shutting down" in api.output() and "Application shutdown complete" in api.output()
