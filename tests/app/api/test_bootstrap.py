"""`cxr bootstrap`'s work: shipped datasets registered and shipped models imported, once; a promotion
made here is never undone by a later import."""

from __future__ import annotations

import pytest
import torch

from app.services.bootstrap import (
    DATASETS_MANIFEST,
    ensure_admin_key,
    import_shipped_models,
    register_shipped_datasets,
)
from ml.checkpoint import build_checkpoint, checkpoint_summary, load_checkpoint, save_checkpoint
from ml.config import DataConfig
from ml.models import create_model
from registry.artifacts import LocalArtifactStore
from registry.audit import list_events
from registry.db import Database
from registry.jobs import create_job
from registry.keys import authenticate
from registry.migrate import upgrade
from registry.publish import publish_checkpoint
from registry.runs import get_or_create_run
from registry.versions import list_versions, resolve, set_alias


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    model = create_model("simple_cnn", num_classes=1)
    ckpt = build_checkpoint(model, model_kwargs={}, labels=["Pneumonia"], task="binary",
                            data_config=DataConfig(input_size=28), thresholds=[0.5])
    return save_checkpoint(ckpt, path)


@pytest.fixture
def registry(tmp_path, data_dir):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    db = Database(url)
    yield db, LocalArtifactStore(tmp_path / "artifacts")
    db.dispose()


def test_datasets_are_registered_once(registry, data_dir):
    db, _ = registry
    with db.session() as s:
        first = register_shipped_datasets(s, DATASETS_MANIFEST, [data_dir])
    with db.session() as s:
        second = register_shipped_datasets(s, DATASETS_MANIFEST, [data_dir])
    assert "dataset pneumoniamnist: registered" in first and "dataset kermany-sample: registered" in first
    assert all(line.endswith("already registered") for line in second) and len(second) == len(first)


def test_datasets_outside_the_data_roots_are_skipped_with_the_reason(registry, tmp_path):
    db, _ = registry
    with db.session() as s:
        lines = register_shipped_datasets(s, DATASETS_MANIFEST, [tmp_path / "elsewhere"])
    assert lines and all("skipped" in line and "outside the configured data roots" in line for line in lines)


def test_models_are_imported_once_and_a_promotion_made_here_is_kept(registry, tmp_path, data_dir):
    db, store = registry
    with db.session() as s:
        register_shipped_datasets(s, DATASETS_MANIFEST, [data_dir])
    models = tmp_path / "models"
    _checkpoint(models / "pneumonia" / "model.pt", seed=0)
    manifest = models / "manifest.toml"
    manifest.write_text('[[model]]\nname = "pneumonia"\npath = "pneumonia/model.pt"\ndataset = "pneumoniamnist"\n'
                        '[[model]]\nname = "absent"\npath = "absent/model.pt"\n')
    with db.session() as s:
        lines = import_shipped_models(s, store, manifest)
    assert lines[0] == "model pneumonia: imported as pneumonia:1 (pneumonia@production)"
    assert lines[1].startswith("model absent: skipped") and "does not exist" in lines[1]
    with db.session() as s:
        assert import_shipped_models(s, store, manifest)[0] == "model pneumonia: already imported as pneumonia:1"
        v1 = resolve(s, "pneumonia")
        assert v1.version == 1 and v1.run_id is None and v1.dataset_id is not None
        assert store.read_bytes(v1.checkpoint.uri, sha256=v1.checkpoint.sha256)

    # a version trained here goes to production; a new shipped file then arrives
    with db.session() as s:
        job = create_job(s, kind="train", model="simple_cnn", dataset_id=v1.dataset_id, params={})
        run = get_or_create_run(s, job_id=job.id, model="simple_cnn", dataset_id=v1.dataset_id, config={},
                                artifact_prefix="file:///x", device="cpu")
        trained = _checkpoint(tmp_path / "trained.pt", seed=1)
        publish_checkpoint(s, store, local_path=trained, key="runs/1/model.pt", name="pneumonia",
                           summary=checkpoint_summary(load_checkpoint(trained)), run_id=run.id)
        set_alias(s, name="pneumonia", alias="production", version=2)
    _checkpoint(models / "pneumonia" / "model.pt", seed=2)
    with db.session() as s:
        assert import_shipped_models(s, store, manifest)[0] == "model pneumonia: imported as pneumonia:3"
        assert resolve(s, "pneumonia").version == 2
        assert [v.version for v in list_versions(s, name="pneumonia")] == [1, 2, 3]


def test_the_first_admin_key_is_generated_once_or_taken_from_the_setting(registry):
    db, _ = registry
    with db.session() as s:
        [line] = ensure_admin_key(s, None)
    assert line.startswith("admin key bootstrap-admin created; shown once")
    generated = line.rsplit(" ", 1)[-1]
    with db.session() as s:
        assert authenticate(s, key=generated).scopes == ["admin"]
        [again] = ensure_admin_key(s, None)
    assert "exists" in again and generated not in again

    configured = "cxr_fromsetting_" + "x" * 24
    with db.session() as s:
        assert "installed from CXR_BOOTSTRAP_ADMIN_KEY" in ensure_admin_key(s, configured)[0]
        assert "already installed" in ensure_admin_key(s, configured)[0]
        assert authenticate(s, key=configured).name == "bootstrap-admin"
        assert authenticate(s, key=generated) is None  # the setting replaced the generated key
        rotated = configured.replace("x", "y")
        ensure_admin_key(s, rotated)
        assert authenticate(s, key=configured) is None and authenticate(s, key=rotated) is not None
        events, _ = list_events(s, action="key.created")
    assert [e.actor for e in events] == ["bootstrap"] * 3
