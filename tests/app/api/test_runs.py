"""`GET /runs`: runs filtered by architecture, dataset and status, a page at a time, with key metrics."""

from __future__ import annotations

import pytest

from registry.datasets import create_dataset
from registry.db import Database
from registry.jobs import create_job
from registry.runs import finish_run, get_or_create_run, record_metrics


@pytest.fixture(scope="module")
def runs(settings, pneumonia) -> list[int]:
    """Three runs: simple_cnn on pneumo (succeeded, best epoch 2 of 3), densenet121 on pneumo (running) and
    simple_cnn on `other` (failed)."""
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            other = create_dataset(s, name="other", kind="pneumoniamnist", location="x.npz", options={},
                                   labels=["Pneumonia"], task="binary", splits={"train": 1})
            ids = []
            for model, dataset_id, status in (("simple_cnn", pneumonia["id"], "succeeded"),
                                              ("densenet121", pneumonia["id"], None),
                                              ("simple_cnn", other.id, "failed")):
                job = create_job(s, kind="train", model=model, dataset_id=dataset_id, params={})
                run = get_or_create_run(s, job_id=job.id, model=model, dataset_id=dataset_id, config={},
                                        artifact_prefix=f"runs/{job.id}", device="cpu")
                for epoch, (loss, auroc) in enumerate([(0.7, 0.6), (0.5, 0.8), (0.45, 0.75)], start=1):
                    record_metrics(s, run_id=run.id, epoch=epoch,
                                   metrics={"train": {"loss": loss + 0.1}, "val": {"loss": loss, "mean_auroc": auroc}})
                if status == "succeeded":
                    finish_run(s, run_id=run.id, status=status, best_epoch=2,
                               report={"splits": {"test": {"mean_auroc": 0.77}}})
                elif status:
                    finish_run(s, run_id=run.id, status=status)
                ids.append(run.id)
            return ids
    finally:
        db.dispose()


def test_runs_list_newest_first_with_key_metrics(client, runs):
    body = client.get("/runs").json()
    assert body["total"] == 3 and [r["id"] for r in body["items"]] == runs[::-1]
    done = next(r for r in body["items"] if r["id"] == runs[0])
    assert done["status"] == "succeeded" and done["epochs"] == 3 and done["best_epoch"] == 2
    assert done["key_metrics"] == {"train.loss": pytest.approx(0.6), "val.loss": 0.5, "val.mean_auroc": 0.8,
                                   "test.mean_auroc": 0.77}
    running = next(r for r in body["items"] if r["id"] == runs[1])
    assert running["key_metrics"]["val.mean_auroc"] == 0.75 and running["key_metrics"]["test.mean_auroc"] is None
    assert running["best_epoch"] is None and running["finished_at"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("model=simple_cnn", [2, 0]),
        ("dataset=pneumo", [1, 0]),
        ("dataset=other&model=simple_cnn", [2]),
        ("status=running", [1]),
        ("status=failed&dataset=pneumo", []),
        ("model=vit", []),
        ("limit=1&offset=1", [1]),
    ],
)
def test_runs_filter_and_page(client, runs, query, expected):
    body = client.get(f"/runs?{query}").json()
    assert [r["id"] for r in body["items"]] == [runs[i] for i in expected]
    if "limit" in query:
        assert (body["total"], body["limit"], body["offset"]) == (3, 1, 1)


@pytest.mark.parametrize("query", ["status=sleeping", "limit=0", "limit=201", "offset=-1", "model=" + "x" * 101])
def test_bad_run_queries_are_422(client, runs, query):
    r = client.get(f"/runs?{query}")
    assert r.status_code == 422 and r.json()["error"] == "validation_error", r.text
