"""Artifacts are only ever read from inside the store and only with the sha256 the registry recorded, and
checkpoints load without running code: a tampered row, a link out of the store, or a pickle with a payload
is refused with a 409 naming the problem, never served and never executed."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from ml.errors import ModelError
from ml.inference import LoadedModel
from registry.artifacts import LocalArtifactStore, OutsideStore, sha256_file
from registry.db import Database
from registry.jobs import create_job
from registry.runs import get_or_create_run, record_artifact


class _Payload:
    """Unpickling this runs `touch <marker>`: what an unsafe `torch.load` would do with a hostile file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def run_id(settings, pneumonia) -> int:
    db = Database(settings.database_url)
    with db.session() as s:
        job = create_job(s, kind="train", model="simple_cnn", dataset_id=pneumonia["id"], params={})
        run = get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=pneumonia["id"], config={},
                                artifact_prefix="file:///x", device="cpu")
    db.dispose()
    return run.id


def _record(settings, run_id: int, name: str, uri: str, sha256: str) -> None:
    db = Database(settings.database_url)
    with db.session() as s:
        record_artifact(s, run_id=run_id, name=name, uri=uri, media_type="application/json", size_bytes=1,
                        sha256=sha256)
    db.dispose()


def test_an_artifact_row_pointing_outside_the_store_is_refused(client, settings, run_id, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "x"}')
    _record(settings, run_id, "forged.json", secret.as_uri(), sha256_file(secret))
    r = client.get(f"/runs/{run_id}/artifacts/forged.json")
    assert r.status_code == 409 and r.json()["error"] == "integrity_failure", r.text
    assert "outside the store" in r.json()["message"] and "password" not in r.text


def test_a_link_in_the_store_leading_out_of_it_is_refused(client, settings, run_id, tmp_path):
    store = LocalArtifactStore(settings.artifact_root)
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    link = store.root / "runs" / "linked" / "report.json"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    _record(settings, run_id, "linked.json", store.uri_for("runs/linked/report.json"), sha256_file(outside))
    r = client.get(f"/runs/{run_id}/artifacts/linked.json")
    assert r.status_code == 409 and "outside the store" in r.json()["message"], r.text
    with pytest.raises(OutsideStore):
        store.read_bytes(store.uri_for("runs/linked/report.json"))


@pytest.mark.parametrize("name", ["../../registry.db", "..%2F..%2Fregistry.db", "%2Fetc%2Fpasswd", "x/../../y"])
def test_artifact_names_are_looked_up_never_used_as_paths(client, run_id, name):
    r = client.get(f"/runs/{run_id}/artifacts/{name}")  # (a client may fold `..` away before sending it)
    assert r.status_code in (404, 422) and r.json()["error"] in ("not_found", "validation_error"), r.text


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    torch.save({"format": "cxr-checkpoint", "payload": _Payload(str(marker))}, path, pickle_protocol=2)
    with pytest.raises(ModelError, match="refused by weights_only"):
        LoadedModel.from_checkpoint(path.read_bytes())
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(str(marker))))  # the payload is real: unpickled unsafely, it runs
    assert marker.exists()
