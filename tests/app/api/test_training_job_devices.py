"""A training job's `devices` parameter passes the same params checks as every other: bounded, and the
global batch must split evenly across the devices (refused at submission, naming the field)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("params", "text"), [
    ({"devices": 0}, "greater than or equal to 1"),
    ({"devices": 65}, "less than or equal to 64"),
    ({"devices": "two"}, "integer"),
    ({"devices": 3, "batch_size": 32}, "batch_size 32 must be a multiple of devices (3)"),
])
def test_a_bad_devices_parameter_is_refused_naming_it(client, pneumonia, params, text):
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": params})
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error"] == "validation_error" and text in error["message"]
    assert any(d["field"].startswith("params") for d in error["details"])


def test_a_job_may_ask_for_several_devices(client, pneumonia):
    params = {"epochs": 1, "batch_size": 32, "devices": 2}
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumo", "params": params})
    assert r.status_code == 202, r.text
    assert client.get(r.headers["location"]).json()["params"]["devices"] == 2
