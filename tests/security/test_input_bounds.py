"""Issue 21, item 4: no 5xx from input.

`?model=pneumonia:99999999999999999999` overflowed into the database driver (a 500 on /predict, /gradcam
and /evaluation-jobs); text with NUL characters reaches PostgreSQL, which refuses it. Every request here
must answer a 4xx JSON error and leave the connection open, on the real server over PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "person1951_bacteria_4882.jpeg"
HUGE = "99999999999999999999"


def _json_4xx(r, status: int = 422) -> dict:
    assert r.status_code == status, f"{r.status_code} {r.text[:500]}"
    assert r.headers["content-type"] == "application/json" and r.headers.get("connection") != "close"
    return r.json()


def _upload() -> dict:
    return {"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")}


@pytest.mark.parametrize("route", ["/predict", "/gradcam"])
@pytest.mark.parametrize("model", [f"zoo:{HUGE}", "zoo:2147483648", "zoo:0", f"zoo:{'9' * 5000}"])
def test_model_versions_beyond_the_registry_range_are_a_422(stranger, route, model):
    body = _json_4xx(stranger.post(route, params={"model": model}, files=_upload()))
    assert body["error"] == "invalid_model_reference" and "from 1 to 2147483647" in body["message"]
    assert stranger.post(route, params={"model": "zoo:1"}, files=_upload()).status_code == 200  # and it goes on


def test_an_evaluation_of_an_overflowing_version_is_a_422_and_nothing_is_queued(trainer):
    before = trainer.get("/evaluation-jobs").json()["total"]
    body = _json_4xx(trainer.post("/evaluation-jobs", json={"model": f"zoo:{HUGE}", "dataset": "anything"}))
    assert "model" in [d["field"] for d in body["details"]]
    assert trainer.get("/evaluation-jobs").json()["total"] == before


@pytest.mark.parametrize(
    "path",
    [f"/training-jobs/{HUGE}", f"/evaluation-jobs/{HUGE}", f"/runs/{HUGE}", f"/runs/{HUGE}/artifacts/report.json",
     f"/training-jobs?offset={HUGE}", f"/evaluation-jobs?limit={HUGE}", "/training-jobs/-1"],
)
def test_integers_in_paths_and_queries_are_bounded(stranger, path):
    _json_4xx(stranger.get(path))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/models/zoo/aliases/staging", {"version": int(HUGE)}),
        ("post", "/training-jobs", {"model": "simple_cnn", "dataset": "tiny", "params": {"seed": 2**64}}),
        ("post", "/training-jobs", {"model": "simple_cnn", "dataset": "tiny", "params": {"max_train_samples": 2**40}}),
        ("post", "/evaluation-jobs", {"model": "zoo:1", "dataset": "tiny", "params": {"max_samples": 2**63}}),
        ("get", f"/audit?offset={HUGE}", None),
    ],
)
def test_integers_in_bodies_are_bounded(admin, tiny, method, path, body):
    _json_4xx(admin.request(method.upper(), path, json=body))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/datasets/a%00b", None),  # PostgreSQL refuses NUL in text: once a 500
        ("get", "/runs/1/artifacts/report%00.json", None),
        ("get", "/audit?actor=a%00b", None),
        ("post", "/datasets", {"name": "nul", "kind": "folder", "path": "kermany-sample", "description": "a\u0000b"}),
        ("post", "/datasets", {"name": "sur", "kind": "folder", "path": "kermany-sample", "description": "\ud800"}),
        ("post", "/datasets", {"name": "opt", "kind": "folder", "path": "kermany-sample", "options": {"\u0000": 1}}),
        ("post", "/training-jobs", {"model": "simple_cnn", "dataset": "tiny",  # typed Any: stored, then echoed
                                    "params": {"model_kwargs": {"note": "\ud800"}}}),
        ("post", "/training-jobs", {"model": "simple_cnn", "dataset": "tiny", "params": {"test_split": "\u0000"}}),
        ("post", "/training-jobs", {"model": "simple_\ud800", "dataset": "tiny"}),
        ("post", "/evaluation-jobs", {"model": "zoo:1", "dataset": "tiny", "split": "te\u0000st"}),
        ("post", "/keys", {"name": "k", "scopes": ["train"], "\u0000": 1}),
    ],
)
def test_text_a_database_cannot_hold_is_a_422(admin, tiny, method, path, body):
    content = json.dumps(body).encode() if body is not None else None  # ASCII escapes, as a client may send
    r = admin.request(method.upper(), path, content=content, headers={"Content-Type": "application/json"})
    _json_4xx(r)
    assert admin.get("/health/ready").status_code == 200
