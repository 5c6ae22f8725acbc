"""POST/GET /training-jobs and cancel: validation names the field, nothing is queued for a bad request,
the row is written before the task is sent, a broker outage answers 503 and loses nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from registry.db import Database
from registry.jobs import claim_job, get_job, requeue_lapsed, reserve_unsent, set_phase, update_progress
from registry.migrate import upgrade
from tests.app.api.support import make_key, make_settings, queued_messages

QUICK = {"epochs": 2, "batch_size": 32, "max_train_samples": 64}


def _job_count(client) -> int:
    return client.get("/training-jobs").json()["total"]


def test_a_valid_request_is_queued_with_a_location(client, settings, pneumonia):
    before = queued_messages(settings)
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": QUICK})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/training-jobs/{job['id']}"
    assert (job["status"], job["kind"], job["model"], job["dataset"]) == ("queued", "train", "simple_cnn", "pneumo")
    assert job["register_as"] == "pneumo-simple_cnn" and job["params"] == QUICK
    assert job["progress"] == {"phase": None, "epoch": 0, "epochs": 2, "step": 0, "steps": 0, "fraction": 0.0,
                               "elapsed_s": None, "eta_s": None}
    assert (job["stalled"], job["heartbeat_at"], job["lease_expires_at"], job["stop_reason"]) == (False, None, None,
                                                                                                  None)
    assert job["model_version"] is None and job["run_id"] is None and job["attempts"] == 0
    assert queued_messages(settings) == before + 1
    assert client.get(r.headers["location"]).json()["id"] == job["id"]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"model": "resnet999", "dataset": "pneumo"}, "model", "unknown model 'resnet999'; known:"),
        ({"model": "simple_cnn", "dataset": "nope"}, "dataset", "no dataset named 'nope'"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"epochs": -1}}, "params.epochs", "greater than"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"epochs": "many"}}, "params.epochs", "integer"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"lr": 0}}, "params.lr", "greater than"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"learning_rate": 1}}, "params.learning_rate",
         "Extra inputs"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"train_split": "dev"}}, "params.train_split",
         "no split 'dev'"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"pretrained_path": "/etc/passwd"}},
         "params.pretrained_path", "cannot be set through the API"),
        ({"model": "simple_cnn", "dataset": "pneumo", "register_as": "no spaces"}, "register_as", "pattern"),
        ({"dataset": "pneumo"}, "model", "Field required"),
        # model options are checked against the architecture before anything is queued
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"widths": "oops"}}},
         "params.model_kwargs.widths", "Sequence[int]"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"width": [8, 16]}}},
         "params.model_kwargs.width", "no option 'width' (its options: dropout, widths)"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"widths": [8]}}},
         "params.model_kwargs.widths", "widths needs at least two layers"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"dropout": True}}},
         "params.model_kwargs.dropout", "valid number"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"widths": [8] * 100}}},
         "params.model_kwargs.widths", "at most 16 items"),
        ({"model": "vit_tiny", "dataset": "pneumo", "params": {"model_kwargs": {"patch_size": 64}}},
         "params.model_kwargs.patch_size", "smaller than patch_size 64"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"model_kwargs": {"junk": "x" * 10_000}}},
         "params", "at most 8192"),
        ({"model": "simple_cnn", "dataset": "pneumo", "params": {"grad_clip": 1e300}}, "params.grad_clip",
         "less than or equal"),
    ],
)
def test_a_bad_request_names_the_field_and_queues_nothing(client, settings, pneumonia, body, field, text):
    jobs, messages = _job_count(client), queued_messages(settings)
    r = client.post("/training-jobs", json=body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error"] == "validation_error" and text in error["message"]
    assert field in [d["field"] for d in error["details"]]
    assert (_job_count(client), queued_messages(settings)) == (jobs, messages)


def test_good_model_options_are_taken_and_listings_leave_params_out(client, pneumonia):
    params = {**QUICK, "model_kwargs": {"widths": [8, 16], "dropout": 0.1}}
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": params})
    assert r.status_code == 202, r.text
    assert r.json()["params"] == params and client.get(r.headers["location"]).json()["params"] == params
    listed = client.get("/training-jobs").json()["items"]
    assert listed[0]["id"] == r.json()["id"] and all("params" not in job for job in listed)


def test_a_job_whose_worker_went_silent_shows_stalled_until_a_worker_takes_it_again(client, settings, pneumonia):
    job_id = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": QUICK}).json()["id"]
    db = Database(settings.database_url)
    try:
        with db.session() as s:  # a worker took it, reported a while, then fell silent: its lease lapsed
            claim_job(s, job_id=job_id, worker="gone:1", device="cpu", lease_seconds=-1)
            set_phase(s, job_id=job_id, phase="training", start_epoch=0)
            update_progress(s, job_id=job_id, epoch=1, epochs=2, step=4, steps=8)
        running = client.get(f"/training-jobs/{job_id}").json()
        assert (running["status"], running["stalled"], running["progress"]["phase"]) == ("running", True, "training")
        assert running["heartbeat_at"] and running["lease_expires_at"] < running["heartbeat_at"]
        assert 0 < running["progress"]["fraction"] < 0.95 and running["progress"]["elapsed_s"] >= 0
        listed = client.get("/training-jobs", params={"status": "running"}).json()["items"]
        assert [j["stalled"] for j in listed if j["id"] == job_id] == [True]
        with db.session() as s:
            requeue_lapsed(s)  # a worker's sweep sends it again: still stalled while it waits
        queued = client.get(f"/training-jobs/{job_id}").json()
        assert (queued["status"], queued["stalled"], queued["progress"]["phase"]) == ("queued", True, None)
        with db.session() as s:
            claim_job(s, job_id=job_id, worker="next:2", device="cpu", lease_seconds=600)
        taken = client.get(f"/training-jobs/{job_id}").json()
        assert (taken["status"], taken["stalled"], taken["progress"]["phase"]) == ("running", False, "preparing")
    finally:
        db.dispose()


def test_list_filters_and_pages(client, pneumonia):
    ids = [client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo"}).json()["id"]
           for _ in range(3)]
    client.post(f"/training-jobs/{ids[0]}/cancel")
    page = client.get("/training-jobs", params={"status": "queued", "limit": 1, "offset": 1}).json()
    assert page["limit"] == 1 and page["offset"] == 1 and len(page["items"]) == 1
    assert page["items"][0]["id"] == ids[1]  # newest first: ids[2], ids[1], ...
    cancelled = client.get("/training-jobs", params={"status": "cancelled"}).json()
    assert ids[0] in [j["id"] for j in cancelled["items"]]
    assert client.get("/training-jobs", params={"status": "lost"}).status_code == 422


def test_cancel_a_queued_job_at_once_and_only_once(client, pneumonia):
    job = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo"}).json()
    r = client.post(f"/training-jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancel_requested"]
    again = client.post(f"/training-jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "already_finished"
    assert "already cancelled" in again.json()["message"]


def test_unknown_jobs_are_404(client):
    r = client.get("/training-jobs/99999")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "message": "job 99999 does not exist"}
    assert client.post("/training-jobs/99999/cancel").status_code == 404
    assert client.get("/evaluation-jobs/99999").status_code == 404
    # ids past the database's INTEGER are refused as invalid, not sent to the database (found by schemathesis)
    for path in ("/training-jobs/9223372036854775808", "/runs/2147483648", "/training-jobs?offset=2147483648"):
        assert client.get(path).status_code == 422, path


def test_broker_down_answers_503_and_keeps_the_job_for_the_sweep(settings, pneumonia, data_dir, admin_key):
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "broker_connect_timeout": 0.5})
    with TestClient(create_app(down), headers={"X-API-Key": admin_key}) as c:
        r = c.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": QUICK})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "queue_unavailable" and "saved as queued" in body["message"]
    assert r.headers["retry-after"] == "30"
    job_id = body["details"][0]["job_id"]
    db = Database(settings.database_url)
    with db.session() as s:
        job = get_job(s, job_id=job_id)
        assert (job.status, job.task_id) == ("queued", None)
        assert job_id in [j for j, _, _ in reserve_unsent(s, older_than_seconds=0)]  # the sweep sends it
    db.dispose()


def test_an_empty_registry_says_how_to_register_a_dataset(tmp_path, data_dir):
    s = make_settings(tmp_path, data_dir)
    upgrade(s.database_url)
    with TestClient(create_app(s), headers={"X-API-Key": make_key(s.database_url, "t", "train")}) as c:
        r = c.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo"})
    assert r.status_code == 422 and "known: none (POST /datasets)" in r.json()["message"]
