"""Reduced-precision variants of a model version (int8, bf16), recorded with the version once admitted.

`cxr quantize NAME:VERSION` measures each variant against fp32 on the version's test split (`ml.quantize`) and
records the outcome here, in the version's `metrics` under `reduced_precision`, one entry per runtime: the
admission figures, and for int8 the quantized ONNX model's artifact URI and sha256. Serving offers an
admitted variant to the model's runtime trial (`app.serving.served`). Kept in the version's JSON rather than a
table of its own: a variant belongs to one version and is never queried across versions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.records import ModelVersionRecord
from registry.tables import ModelVersion
from registry.versions import get_model_version

KEY = "reduced_precision"


def record_variant(
    session: Session, *, version_id: int, runtime: str, admission: dict[str, Any],
    artifact_uri: str | None = None, sha256: str | None = None,
) -> ModelVersionRecord:
    """Record (or replace) what `runtime`'s trial gave for the version; the artifact for int8."""
    row = session.get(ModelVersion, version_id)
    if row is None:
        raise NotFound(f"model version id {version_id} not found")
    variants = dict((row.metrics or {}).get(KEY) or {})
    variants[runtime] = {**admission, "artifact_uri": artifact_uri, "sha256": sha256}
    row.metrics = {**(row.metrics or {}), KEY: variants}  # a new dict: the JSON column sees the change
    session.flush()
    return get_model_version(session, version_id=version_id)


def admitted_variants(record: ModelVersionRecord) -> dict[str, dict[str, Any]]:
    """The variants of `record` whose trial admitted them, by runtime name."""
    variants = (record.metrics or {}).get(KEY) or {}
    return {name: v for name, v in variants.items() if isinstance(v, dict) and v.get("admitted")}
