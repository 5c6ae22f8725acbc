"""`GET /models`: the servable models, their versions, aliases and evaluation metrics."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PredictorDep, SessionDep, SettingsDep, ViewerDep
from app.schemas.serving import ModelInfo, ModelList, ModelVersionInfo, ServingInfo
from registry.models import DEFAULT_ALIAS, list_versions, parse_ref

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList)
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
                versions=versions,
            )
        )
    return ModelList(default_model=settings.default_model, items=items)

