"""POST/GET /datasets: the path must resolve inside a data root, the adapter must read it."""

from __future__ import annotations

import pytest


def test_registration_records_labels_task_and_splits(client, pneumonia, data_dir):
    assert pneumonia["labels"] == ["Pneumonia"] and pneumonia["task"] == "binary"
    assert pneumonia["splits"] == {"test": 624, "train": 4708, "val": 524}
    assert pneumonia["location"] == str((data_dir / "pneumoniamnist" / "pneumoniamnist.npz").resolve())
    assert client.get("/datasets/pneumo").json() == pneumonia
    assert "pneumo" in [d["name"] for d in client.get("/datasets").json()["items"]]


def test_folder_datasets_take_options(client):
    r = client.post("/datasets", json={"name": "kermany", "kind": "folder", "path": "kermany-sample",
                                       "options": {"split": "stratified"}})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/datasets/kermany"
    assert r.json()["labels"] == ["NORMAL", "PNEUMONIA"] and sum(r.json()["splits"].values()) == 24


def test_a_name_is_registered_once(client, pneumonia):
    r = client.post("/datasets", json={"name": "pneumo", "kind": "pneumoniamnist",
                                       "path": "pneumoniamnist/pneumoniamnist.npz"})
    assert r.status_code == 409 and "already exists" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"kind": "pneumoniamnist", "path": "../data/pneumoniamnist/pneumoniamnist.npz"}, 422, "without '..'"),
        ({"kind": "pneumoniamnist", "path": "/etc/passwd"}, 422, "outside the configured data roots"),
        ({"kind": "pneumoniamnist", "path": "missing/file.npz"}, 422, "does not exist in any data root"),
        ({"kind": "pneumoniamnist", "path": "escape/passwd"}, 422, "outside the configured data roots"),
        ({"kind": "mnist3d", "path": "pneumoniamnist"}, 422, "unknown dataset kind 'mnist3d'"),
        ({"kind": "pneumoniamnist", "path": "kermany-sample"}, 422, "pneumoniamnist cannot read 'kermany-sample'"),
        ({"kind": "folder", "path": "kermany-sample", "options": {"colour": "red"}}, 422, "colour"),
    ],
)
def test_bad_paths_and_adapters_are_refused(client, settings, body, status, text):
    (settings.data_roots[1] / "escape").unlink(missing_ok=True)
    (settings.data_roots[1] / "escape").symlink_to("/etc")  # a link inside a root pointing outside it
    before = len(client.get("/datasets").json()["items"])
    r = client.post("/datasets", json={"name": "bad", **body})
    assert r.status_code == status, r.text
    assert text in r.json()["message"]
    assert len(client.get("/datasets").json()["items"]) == before


def test_an_unknown_dataset_is_404(client):
    r = client.get("/datasets/nope")
    assert r.status_code == 404 and "not registered" in r.json()["message"]


def test_a_merged_dataset_registers_with_its_members_and_weights_and_trains_by_name(client, settings, data_dir):
    from tests.ml.data.merged_layout import build_shared_layout

    build_shared_layout(settings.data_roots[1] / "shared-tiny", data_dir)
    body = {"name": "all-cxr", "kind": "merged", "path": "shared-tiny",
            "options": {"members": ["kermany", "nih"], "weights": {"kermany": 1, "nih": 2}}}
    r = client.post("/datasets", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["labels"][-1] == "Tuberculosis" and len(r.json()["labels"]) == 15
    assert r.json()["task"] == "multilabel" and r.json()["splits"]["test"] == 6 + 4
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "all-cxr", "params": {"epochs": 1}})
    assert r.status_code == 202, r.text
    for options, text in (({"members": ["kermany", "chexpert"]}, "unknown member"),
                          ({"weights": {"kermany": "heavy"}}, "options.weights.kermany"),
                          ({"members": ["kermany"], "weights": {"nih": 1}}, "weights")):
        r = client.post("/datasets", json={**body, "name": "bad-merged", "options": options})
        assert r.status_code == 422 and text in r.json()["message"], r.text
