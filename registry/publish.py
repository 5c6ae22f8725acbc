"""Publishing a checkpoint file as a model version: store the file, record it, create the version.

Callers (the worker after training, the start-up import of shipped models) read the checkpoint's
metadata with `ml` and pass it in as plain values, so this package stays free of torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.artifacts import LocalArtifactStore
from registry.records import ModelVersionRecord
from registry.runs import upsert_checkpoint
from registry.versions import create_model_version, set_alias


def publish_checkpoint(
    session: Session,
    store: LocalArtifactStore,
    *,
    local_path: Path,
    key: str,
    name: str,
    summary: dict[str, Any],
    run_id: int | None = None,
    dataset_id: int | None = None,
    description: str = "",
    alias: str | None = None,
) -> ModelVersionRecord:
    """`summary` is `ml.checkpoint.checkpoint_summary(...)`; idempotent for a run."""
    stored = store.put_file(local_path, key)
    ckpt = upsert_checkpoint(session, run_id=run_id, kind="final", uri=stored.uri, size_bytes=stored.size_bytes,
                             sha256=stored.sha256, epoch=summary.get("epoch"), metrics=summary.get("metrics"))
    version = create_model_version(
        session, name=name, architecture=summary["architecture"], checkpoint_id=ckpt.id, labels=summary["labels"],
        task=summary["task"], data_config=summary["data_config"], thresholds=summary["thresholds"],
        metrics=summary.get("metrics", {}), run_id=run_id, dataset_id=dataset_id, description=description,
    )
    if alias is not None:
        version = set_alias(session, name=name, alias=alias, version=version.version)
    return version
