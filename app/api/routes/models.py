"""`/models`: the registry's models with their versions and aliases, how each loaded version is served, and
moving an alias."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.auth import AUTH_ERRORS, AdminKey
from app.api.deps import PredictorDep, SessionDep, SettingsDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.registry import AliasRequest, ModelVersion, ModelVersionList
from app.schemas.serving import ModelInfo, ModelList, ModelVersionInfo, ServingInfo
from registry.audit import record_event
from registry.errors import NotFound
from registry.versions import (
    DEFAULT_ALIAS,
    NAME_PATTERN,
    aliases,
    list_versions,
    model_names,
    parse_ref,
    set_alias,
)

router = APIRouter(prefix="/models", tags=["models"])

UNKNOWN_MODEL = ("not_found", "no model named 'chest14' (known: pneumonia)")
UNKNOWN_VERSION = ("not_found", "model 'pneumonia:9' does not exist")
ModelName = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["pneumonia"])]
AliasName = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["production"])]


@router.get("", response_model=ModelList)
def list_served_models(session: SessionDep, predictor: PredictorDep, settings: SettingsDep,
                       viewer: ViewerDep) -> ModelList:
    """List the models in the registry with their labels, versions, aliases and metrics."""
    # a loaded version also says how it is served: its runtime (with the trial's timings) and batching
    loaded = predictor.models.loaded_versions()
    default_name = parse_ref(settings.default_model).name
    by_name: dict[str, list[ModelVersionInfo]] = {}
    for record in list_versions(session):
        served = predictor.models.loaded_model(record.id)
        info = ModelVersionInfo.of(record, loaded=record.id in loaded,
                                   serving=ServingInfo.of(served, viewer.text) if served else None)
        by_name.setdefault(record.name, []).append(info)
    items = []
    for name, versions in by_name.items():
        aliases = {alias: v.version for v in versions for alias in v.aliases}
        production = next((v for v in versions if DEFAULT_ALIAS in v.aliases), versions[-1])
        items.append(
            ModelInfo(
                name=name,
                default=name == default_name,
                aliases=aliases,
                labels=production.labels,
                quality=production.quality,
                versions=versions,
            )
        )
    return ModelList(default_model=settings.default_model, items=items)


@router.get("/{name}/versions", response_model=ModelVersionList,
            responses=error_responses(404, 422, examples={404: UNKNOWN_MODEL}))
def versions(name: ModelName, session: SessionDep, predictor: PredictorDep, viewer: ViewerDep) -> ModelVersionList:
    """List a model's versions."""
    found = list_versions(session, name=name)
    if not found:
        raise NotFound(f"no model named '{name}' (known: {', '.join(model_names(session)) or 'none'})")
    served = {v.id: predictor.models.loaded_model(v.id) for v in found}
    return ModelVersionList(items=[
        ModelVersion.of(v, viewer, ServingInfo.of(s, viewer.text) if (s := served[v.id]) else None)
        for v in found])


@router.put("/{name}/aliases/{alias}", response_model=ModelVersion,
            responses={**AUTH_ERRORS, **error_responses(404, 422, examples={404: UNKNOWN_VERSION})})
def promote(name: ModelName, alias: AliasName, body: AliasRequest, session: SessionDep,
            caller: AdminKey, viewer: ViewerDep) -> ModelVersion:
    """Point a model alias (e.g. production) at a version."""
    before = aliases(session).get(f"{name}@{alias}")
    version = set_alias(session, name=name, alias=alias, version=body.version)
    record_event(session, actor=caller.name, action="alias.moved", target=f"/models/{name}/aliases/{alias}",
                 details={"version": version.version, "from_version_id": before, "to_version_id": version.id})
    return ModelVersion.of(version, viewer)
