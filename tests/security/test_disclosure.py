"""Issue 21, item 5: less to read for strangers.

Open GET routes once showed absolute server paths (a dataset's `location`, `file:///...` checkpoint URIs,
`data_root` in runs and `config.json`), the worker's host:pid and raw exception text. Now a caller without
an admin key reads paths relative to the data roots and the artifact store and no worker identity; a
failed job says a short code and a message, its traceback stays in the worker's log. Jobs here run on the
deployment's real worker process.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx
import pytest

from tests.security.conftest import write_tiny_npz

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUICK = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
OPEN_ROUTES = ["/datasets", "/training-jobs", "/evaluation-jobs", "/models", "/models/zoo/versions",
               "/health/ready"]


def _wait(client: httpx.Client, location: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"{location} did not finish: {job}"
        time.sleep(0.3)


def _server_paths(deployment) -> list[str]:
    return [str(deployment.tmp), str(deployment.repo_data), str(deployment.root.resolve()), "file://"]


def _assert_no_server_paths(deployment, text: str, where: str) -> None:
    for path in _server_paths(deployment):
        assert path not in text, f"{where} shows {path}: {text[:1000]}"


@pytest.fixture(scope="module")
def trained(deployment, tiny) -> dict[str, Any]:
    with deployment.client(deployment.train_key) as trainer:
        r = trainer.post("/training-jobs", json={"model": "simple_cnn", "dataset": tiny, "params": QUICK})
        assert r.status_code == 202, r.text
        job = _wait(trainer, r.headers["location"])
    assert job["status"] == "succeeded", job
    return job


def test_datasets_show_locations_relative_to_their_root_except_to_admins(deployment, tiny, stranger, trainer, admin):
    for client in (stranger, trainer):  # a train key is no admin key
        assert client.get(f"/datasets/{tiny}").json()["location"] == "tiny/tiny.npz"
    assert admin.get(f"/datasets/{tiny}").json()["location"] == str(deployment.root.resolve() / "tiny" / "tiny.npz")


def test_checkpoint_uris_are_store_keys_except_to_admins(deployment, stranger, admin):
    [version] = stranger.get("/models/zoo/versions").json()["items"]
    assert version["checkpoint"]["uri"].startswith("models/zoo/") and version["checkpoint"]["uri"].endswith(".pt")
    [real] = admin.get("/models/zoo/versions").json()["items"]
    assert real["checkpoint"]["uri"] == (deployment.artifacts / version["checkpoint"]["uri"]).as_uri()


def test_a_job_and_its_run_show_no_server_paths_or_worker_to_strangers(deployment, trained, stranger, admin):
    location = f"/training-jobs/{trained['id']}"
    job = stranger.get(location).json()
    assert job["worker"] is None and job["error"] is None and job["error_code"] is None
    assert admin.get(location).json()["worker"].endswith(f":{deployment.worker.pid}")

    run = stranger.get(f"/runs/{job['run_id']}")
    _assert_no_server_paths(deployment, run.text, "GET /runs")
    run = run.json()
    assert run["config"]["data_root"] == "tiny/tiny.npz"
    assert {c["uri"] for c in run["checkpoints"]} == {f"runs/{job['id']}/{n}.pt" for n in ("last", "best", "model")}
    real = admin.get(f"/runs/{job['run_id']}").json()
    assert real["config"]["data_root"] == str(deployment.root.resolve() / "tiny" / "tiny.npz")
    assert all(c["uri"].startswith("file:///") for c in real["checkpoints"])

    for artifact in run["artifacts"]:  # downloadable by anyone: the files themselves carry no server path
        r = stranger.get(artifact["url"])
        assert r.status_code == 200, artifact
        if artifact["media_type"] != "image/png":
            _assert_no_server_paths(deployment, r.text, artifact["name"])
    config = stranger.get(f"/runs/{job['run_id']}/artifacts/config.json").json()
    assert config["train_config"]["data_root"] == "tiny/tiny.npz"


def test_an_evaluation_report_names_the_checkpoint_by_its_key(deployment, tiny, trainer, stranger):
    r = trainer.post("/evaluation-jobs", json={"model": "zoo:1", "dataset": tiny, "split": "test"})
    assert r.status_code == 202, r.text
    job = _wait(trainer, r.headers["location"])
    assert job["status"] == "succeeded", job
    report = stranger.get(f"/runs/{job['run_id']}/artifacts/report.json")
    _assert_no_server_paths(deployment, report.text, "report.json")
    assert report.json()["checkpoint"].startswith("models/zoo/")


def test_a_failed_job_says_a_code_and_a_message_and_its_traceback_stays_in_the_log(deployment, trainer, stranger):
    folder = deployment.root / "doomed"
    write_tiny_npz(folder / "doomed.npz")
    r = trainer.post("/datasets", json={"name": "doomed", "kind": "medmnist", "path": "doomed/doomed.npz",
                                        "options": {"labels": ["Atelectasis", "Cardiomegaly", "Effusion",
                                                               "Pneumonia"]}})
    assert r.status_code == 201, r.text
    shutil.rmtree(folder)  # the files go away before a worker reads them
    r = trainer.post("/training-jobs", json={"model": "simple_cnn", "dataset": "doomed", "params": QUICK})
    assert r.status_code == 202, r.text
    job = _wait(trainer, r.headers["location"])
    assert job["status"] == "failed" and job["error_code"] == "dataset_error", job
    shown = stranger.get(r.headers["location"]).json()
    assert shown["error"] == "MedMNIST file or folder not found: doomed/doomed.npz", shown
    _assert_no_server_paths(deployment, stranger.get(r.headers["location"]).text, "the failed job")
    log = deployment.worker.output()
    assert f"job {job['id']} failed" in log and "Traceback" in log and str(folder) in log  # the details: log only


def test_no_open_route_shows_a_server_path_to_a_stranger(deployment, trained, stranger):
    for route in OPEN_ROUTES:
        r = stranger.get(route)
        assert r.status_code == 200, (route, r.text)
        _assert_no_server_paths(deployment, r.text, route)
