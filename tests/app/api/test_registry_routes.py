"""Runs, their artifacts, model versions, aliases and evaluation jobs over HTTP, on rows written
through the registry (the integration tests produce them with real workers)."""

from __future__ import annotations

import pytest

from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.jobs import create_job
from registry.publish import publish_checkpoint
from registry.runs import get_or_create_run, record_artifact, record_metrics, upsert_checkpoint
from tests.app.api.support import queued_messages

SUMMARY = {"architecture": "simple_cnn", "labels": ["Pneumonia"], "task": "binary",
           "data_config": {"input_size": 28}, "thresholds": [0.4], "metrics": {"test": {"mean_auroc": 0.9}},
           "epoch": 1}


@pytest.fixture(scope="module")
def run(settings, pneumonia, tmp_path_factory):
    """A finished run with two epochs of metrics, a report artifact and a published model version."""
    db, store = Database(settings.database_url), LocalArtifactStore(settings.artifact_root)
    folder = tmp_path_factory.mktemp("run")
    (folder / "report.json").write_text('{"splits": {}}')
    (folder / "model.pt").write_bytes(b"weights")
    with db.session() as s:
        job = create_job(s, kind="train", model="simple_cnn", dataset_id=pneumonia["id"], params={})
        run = get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=pneumonia["id"], config={},
                                artifact_prefix=store.uri_for("runs/x"), device="cpu")
        for epoch in (0, 1):
            record_metrics(s, run_id=run.id, epoch=epoch, metrics={"val": {"loss": 1.0 - epoch / 4}})
        stored = store.put_file(folder / "report.json", "runs/x/report.json")
        record_artifact(s, run_id=run.id, name="report.json", uri=stored.uri, media_type="application/json",
                        size_bytes=stored.size_bytes, sha256=stored.sha256)
        upsert_checkpoint(s, run_id=run.id, kind="last", uri=stored.uri, size_bytes=1, sha256=stored.sha256, epoch=1)
        publish_checkpoint(s, store, local_path=folder / "model.pt", key="runs/x/model.pt", name="pneumo-cnn",
                           summary=SUMMARY, run_id=run.id, dataset_id=pneumonia["id"])
    db.dispose()
    return run


def test_a_run_shows_its_metric_series_checkpoints_and_artifacts(client, run):
    body = client.get(f"/runs/{run.id}").json()
    assert body["dataset"] == "pneumo" and body["job_id"] == run.job_id
    assert body["metrics"] == {"val": {"loss": [{"epoch": 0, "value": 1.0}, {"epoch": 1, "value": 0.75}]}}
    assert {c["kind"] for c in body["checkpoints"]} == {"last", "final"}
    assert body["artifacts"][0]["url"] == f"/runs/{run.id}/artifacts/report.json"


def test_artifacts_download_with_their_media_type_and_refuse_changed_files(client, run, settings):
    r = client.get(f"/runs/{run.id}/artifacts/report.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"splits": {}}
    assert client.get(f"/runs/{run.id}/artifacts/..%2F..%2Fregistry.db").status_code == 404
    assert client.get("/runs/99999").status_code == 404
    store = LocalArtifactStore(settings.artifact_root)
    path = store.path_of(store.uri_for("runs/x/report.json"))
    original = path.read_bytes()
    path.write_text('{"splits": {"forged": 1}}')
    try:
        r = client.get(f"/runs/{run.id}/artifacts/report.json")
        assert r.status_code == 409 and r.json()["error"] == "integrity_failure"
    finally:
        path.write_bytes(original)


def test_versions_are_listed_and_an_alias_is_moved(client, run):
    versions = client.get("/models/pneumo-cnn/versions").json()["items"]
    assert [(v["version"], v["aliases"], v["run_id"]) for v in versions] == [(1, [], run.id)]
    r = client.put("/models/pneumo-cnn/aliases/production", json={"version": 1})
    assert r.status_code == 200 and r.json()["aliases"] == ["production"]
    assert client.put("/models/pneumo-cnn/aliases/production", json={"version": 9}).status_code == 404
    assert client.put("/models/pneumo-cnn/aliases/production", json={"version": 0}).status_code == 422
    assert client.get("/models/nothing/versions").status_code == 404


def test_an_evaluation_job_is_checked_against_the_version_and_dataset(client, settings, run):
    before = queued_messages(settings, "cxr.evaluate")
    r = client.post("/evaluation-jobs", json={"model": "pneumo-cnn:1", "dataset": "pneumo", "split": "val",
                                              "params": {"max_samples": 32}})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/evaluation-jobs/{job['id']}"
    assert (job["kind"], job["model"], job["split"], job["model_version"]) == (
        "evaluate", "pneumo-cnn:1", "val", {"name": "pneumo-cnn", "version": 1})
    assert queued_messages(settings, "cxr.evaluate") == before + 1
    for body, field in [({"model": "pneumo-cnn:7", "dataset": "pneumo"}, "model"),
                        ({"model": "pneumo cnn", "dataset": "pneumo"}, "model"),
                        ({"model": "pneumo-cnn:1", "dataset": "pneumo", "split": "dev"}, "split"),
                        ({"model": "pneumo-cnn:1", "dataset": "pneumo", "params": {"tta": "maybe"}}, "params.tta")]:
        bad = client.post("/evaluation-jobs", json=body)
        assert bad.status_code == 422 and field in [d["field"] for d in bad.json()["details"]], bad.text
    assert queued_messages(settings, "cxr.evaluate") == before + 1


def test_every_route_documents_its_errors_and_examples(client):
    spec = client.get("/openapi.json").json()
    paths = ["/training-jobs", "/training-jobs/{job_id}", "/training-jobs/{job_id}/cancel", "/evaluation-jobs",
             "/evaluation-jobs/{job_id}", "/evaluation-jobs/{job_id}/cancel", "/datasets", "/datasets/{name}",
             "/runs/{run_id}", "/runs/{run_id}/artifacts/{name}", "/models/{name}/versions",
             "/models/{name}/aliases/{alias}"]
    mine = {p: spec["paths"][p] for p in paths}
    schemas = spec["components"]["schemas"]
    for path, ops in mine.items():
        for method, op in ops.items():
            assert op["summary"][0].isupper() and op["summary"].endswith("."), (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert any(code.startswith("4") for code in op["responses"]), (method, path)
            ok = next(r for code, r in op["responses"].items() if code.startswith("2"))
            ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            has_example = ref is None or "examples" in schemas[ref.split("/")[-1]] or any(
                "examples" in p.get("schema", {}) or "examples" in p for p in op.get("parameters", []))
            assert has_example, (method, path)
