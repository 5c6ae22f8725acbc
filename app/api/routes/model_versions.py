"""A registered model's versions and aliases (GET /models itself lives with serving)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.auth import AUTH_ERRORS, AdminKey
from app.api.deps import PredictorDep, SessionDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.registry import AliasRequest, ModelVersion, ModelVersionList
from app.schemas.serving import ServingInfo
from registry.errors import NotFound
from registry.keys import record_event
from registry.models import NAME_PATTERN, aliases, list_versions, model_names, set_alias

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["pneumonia"])]
AliasName = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["production"])]


@router.get("/{name}/versions", response_model=ModelVersionList, responses=error_responses(404, 422))
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
            responses={**AUTH_ERRORS, **error_responses(404, 422)})
def promote(name: ModelName, alias: AliasName, body: AliasRequest, session: SessionDep,
            caller: AdminKey, viewer: ViewerDep) -> ModelVersion:
    """Point a model alias (e.g. production) at a version."""
    before = aliases(session).get(f"{name}@{alias}")
    version = set_alias(session, name=name, alias=alias, version=body.version)
    record_event(session, actor=caller.name, action="alias.moved", target=f"/models/{name}/aliases/{alias}",
                 details={"version": version.version, "from_version_id": before, "to_version_id": version.id})
    return ModelVersion.of(version, viewer)
