"""The end-to-end flow both deployments must show: submit a training job, watch its progress move,
find its run, per-epoch metrics, checkpoints (sha256 matching the files), evaluation report and new
model version, and promote that version to production."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from tests.integration.stack import QUICK_PARAMS, finished, watch_job


def file_of(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def submit(client: httpx.Client, **params: Any) -> str:
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumoniamnist",
                                            "params": {**QUICK_PARAMS, **params}})
    assert r.status_code == 202, r.text
    # written as queued before it is sent; a fast worker may already have taken it when the answer is built
    assert r.json()["status"] in ("queued", "running", "succeeded"), r.text
    return r.headers["location"]


def train_watch_and_promote(client: httpx.Client, artifact_root: Path, epochs: int = 3) -> dict[str, Any]:
    location = submit(client, epochs=epochs)
    job, seen = watch_job(client, location, finished, timeout=300)
    assert job["status"] == "succeeded", job["error"]

    # its progress moved: epoch and step advanced through several states while it ran
    running = [s for s in seen if s["status"] == "running"]
    fractions = [s["fraction"] for s in running]
    assert len(running) >= 3 and fractions == sorted(fractions) and any(0 < f < 1 for f in fractions), seen
    assert job["progress"]["epoch"] == epochs and job["progress"]["fraction"] == 1
    assert job["attempts"] == 1 and job["device"].split()[0] in ("cpu", "cuda") and job["worker"]

    # the run and its per-epoch metrics
    run = client.get(f"/runs/{job['run_id']}").json()
    assert run["status"] == "succeeded" and run["job_id"] == job["id"] and run["resumed_from_epoch"] is None
    for split, names in (("train", ("loss", "lr")), ("val", ("loss", "mean_auroc"))):
        for name in names:
            assert [p["epoch"] for p in run["metrics"][split][name]] == list(range(1, epochs + 1)), (split, name)

    # its checkpoints, each file's sha256 matching the registry
    ckpts = {c["kind"]: c for c in run["checkpoints"]}
    assert set(ckpts) == {"last", "best", "final"} and ckpts["last"]["epoch"] == epochs
    for ckpt in ckpts.values():
        path = file_of(ckpt["uri"])
        assert path.is_relative_to(artifact_root) and path.stat().st_size == ckpt["size_bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ckpt["sha256"]

    # the evaluation report and plots
    report = client.get(f"/runs/{run['id']}/artifacts/report.json")
    assert report.status_code == 200 and report.headers["content-type"] == "application/json"
    test = report.json()["splits"]["test"]
    assert test["n"] == QUICK_PARAMS["max_eval_samples"] and 0 <= test["mean_auroc"] <= 1
    assert run["report"]["splits"]["test"]["mean_auroc"] == test["mean_auroc"]
    plot = client.get(f"/runs/{run['id']}/artifacts/roc_test.png")
    assert plot.headers["content-type"] == "image/png" and plot.content.startswith(b"\x89PNG")

    # a new model version made of the final checkpoint
    name, number = job["model_version"]["name"], job["model_version"]["version"]
    assert name == "pneumoniamnist-simple_cnn"
    versions = client.get(f"/models/{name}/versions").json()["items"]
    produced = [v for v in versions if v["run_id"] == run["id"]]
    assert len(produced) == 1 and produced[0]["version"] == number
    assert produced[0]["checkpoint"]["sha256"] == ckpts["final"]["sha256"] and produced[0]["labels"] == ["Pneumonia"]

    # promoted to production
    r = client.put(f"/models/{name}/aliases/production", json={"version": number})
    assert r.status_code == 200 and r.json()["aliases"] == ["production"]
    versions = client.get(f"/models/{name}/versions").json()["items"]
    assert [v["version"] for v in versions if "production" in v["aliases"]] == [number]
    return job
