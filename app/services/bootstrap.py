"""First start: register the shipped datasets (`data/datasets.toml`), import the shipped models
(`models/manifest.toml`) and make sure there is an admin API key. Idempotent: run it at every start; what
is there already is left alone."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from sqlalchemy.orm import Session

from app.services.datasets import register_dataset
from app.services.errors import ServiceError
from ml.checkpoint import checkpoint_summary, load_checkpoint
from registry.artifacts import LocalArtifactStore, sha256_file
from registry.audit import record_event
from registry.datasets import find_dataset
from registry.errors import NotFound
from registry.keys import active_admin_keys, create_key, ensure_key
from registry.publish import publish_checkpoint
from registry.settings import REPO_ROOT
from registry.versions import DEFAULT_ALIAS, list_versions, resolve

log = logging.getLogger(__name__)

DATASETS_MANIFEST = REPO_ROOT / "data" / "datasets.toml"
MODELS_MANIFEST = REPO_ROOT / "models" / "manifest.toml"
BOOTSTRAP_ACTOR = "bootstrap"


def register_shipped_datasets(session: Session, manifest: Path, data_roots: list[Path]) -> list[str]:
    """One line per dataset saying what happened to it."""
    lines = []
    for entry in tomllib.loads(manifest.read_text()).get("dataset", []):
        name = entry["name"]
        if find_dataset(session, name=name) is not None:
            lines.append(f"dataset {name}: already registered")
            continue
        try:
            register_dataset(session, name=name, kind=entry["kind"], path=str(manifest.parent / entry["path"]),
                             options=entry.get("options", {}), description=entry.get("description", ""),
                             data_roots=data_roots)
        except ServiceError as exc:
            lines.append(f"dataset {name}: skipped, {exc.message}")
            continue
        session.commit()
        lines.append(f"dataset {name}: registered")
    return lines


def import_shipped_models(session: Session, store: LocalArtifactStore, manifest: Path) -> list[str]:
    """One line per model saying what happened to it."""
    lines = []
    for entry in tomllib.loads(manifest.read_text()).get("model", []):
        name, path = entry["name"], manifest.parent / entry["path"]
        if not path.is_file():
            lines.append(f"model {name}: skipped, {path} does not exist")
            continue
        sha256 = sha256_file(path)
        known = next((v for v in list_versions(session, name=name) if v.checkpoint and v.checkpoint.sha256 == sha256),
                     None)
        if known is not None:
            lines.append(f"model {name}: already imported as {known.ref}")
            continue
        alias = entry.get("alias", DEFAULT_ALIAS)
        dataset = find_dataset(session, name=entry["dataset"]) if entry.get("dataset") else None
        version = publish_checkpoint(
            session, store, local_path=path, key=f"models/{name}/{sha256[:16]}/model.pt", name=name,
            summary=checkpoint_summary(load_checkpoint(path)), dataset_id=dataset.id if dataset else None,
            description=entry.get("description", ""), alias=alias if _may_move(session, name, alias) else None,
        )
        session.commit()
        lines.append(f"model {name}: imported as {version.ref}" + (f" ({name}@{alias})" if version.aliases else ""))
    return lines


def _may_move(session: Session, name: str, alias: str) -> bool:
    """An alias is set for a shipped model unless it points at a version trained here."""
    try:
        return resolve(session, f"{name}@{alias}").run_id is None
    except NotFound:
        return True


BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def ensure_admin_key(session: Session, configured: str | None) -> list[str]:
    """The first admin key: the configured one (installed, or rotated when the setting changed), else a
    generated one printed this once; nothing when an admin key exists already."""
    if configured:
        record, changed = ensure_key(session, name=BOOTSTRAP_KEY_NAME, key=configured, scopes=["admin"])
        if changed:
            record_event(session, actor=BOOTSTRAP_ACTOR, action="key.created", target=f"/keys/{record.name}",
                         details={"scopes": record.scopes, "prefix": record.prefix, "from": "setting"})
        session.commit()
        return [f"admin key {record.name}: {'installed' if changed else 'already installed'} from "
                f"CXR_BOOTSTRAP_ADMIN_KEY ({record.prefix}...)"]
    existing = active_admin_keys(session)
    if existing:
        return [f"admin key: {existing[0].name} ({existing[0].prefix}...) exists; `cxr keys create` makes more"]
    record, key = create_key(session, name=BOOTSTRAP_KEY_NAME, scopes=["admin"])
    record_event(session, actor=BOOTSTRAP_ACTOR, action="key.created", target=f"/keys/{record.name}",
                 details={"scopes": record.scopes, "prefix": record.prefix, "from": "generated"})
    session.commit()
    return [f"admin key {record.name} created; shown once, keep it: {key}"]
