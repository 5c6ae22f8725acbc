"""Dependencies, named once as `Annotated` aliases so a route's signature lists what it needs.

Those that only read the app's state are `async def`: FastAPI runs a plain `def` dependency on its thread
pool, a thread hop per dependency per request (0.3-1 ms each on 2 busy cores). The database session stays a
plain `def`: opening and committing it blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from app.api.limits import KEY_STATE
from app.schemas.viewer import Viewer, path_view
from app.serving.metrics import ServiceMetrics
from app.serving.predictor import Predictor
from app.settings import AppSettings
from app.state import AppState
from app.tasks import TaskQueue
from registry.artifacts import LocalArtifactStore
from registry.records import ApiKeyRecord


async def get_state(request: Request) -> AppState:
    return request.app.state.cxr


async def get_settings(state: Annotated[AppState, Depends(get_state)]) -> AppSettings:
    return state.settings


def get_session(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


async def get_artifacts(state: Annotated[AppState, Depends(get_state)]) -> LocalArtifactStore:
    return state.artifacts


async def get_predictor(state: Annotated[AppState, Depends(get_state)]) -> Predictor:
    return state.predictor


async def get_tasks(state: Annotated[AppState, Depends(get_state)]) -> TaskQueue:
    return state.tasks


async def get_metrics(state: Annotated[AppState, Depends(get_state)]) -> ServiceMetrics:
    return state.metrics


def caller_key(request: Request) -> ApiKeyRecord | None:
    """The caller's valid key as `AccessGate` found it before the route ran (None: no key, or a wrong one,
    which the gate has already answered with 401 on a route that needs one)."""
    found = request.scope.get("state", {})
    if KEY_STATE not in found:
        raise RuntimeError("AccessGate did not run for this request: build the app with app.main.create_app")
    return found[KEY_STATE]


async def get_viewer(request: Request, settings: Annotated[AppSettings, Depends(get_settings)],
                     artifacts: Annotated[LocalArtifactStore, Depends(get_artifacts)]) -> Viewer:
    """Who reads an open route: an admin key sees server paths, anyone else paths relative to the roots."""
    record = caller_key(request)  # checked once, by AccessGate, with failed keys throttled there
    return Viewer(admin=record is not None and record.allows("admin"),
                  paths=path_view((*settings.data_roots, artifacts.root)))


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[AppSettings, Depends(get_settings)]
# scope="function": the session commits before the response is sent (by default FastAPI runs a yield
# dependency's exit after sending, so a client's next request could miss the write it was just told about)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ArtifactsDep = Annotated[LocalArtifactStore, Depends(get_artifacts)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
TasksDep = Annotated[TaskQueue, Depends(get_tasks)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ViewerDep = Annotated[Viewer, Depends(get_viewer)]
ModelQuery = Annotated[
    str | None,
    Query(
        description="`name` (its production alias), `name@alias` or `name:version`; default: the default "
        "model",
        openapi_examples={
            "default": {"summary": "the default model", "value": None},
            "alias": {"summary": "an alias", "value": "pneumonia@production"},
            "version": {"summary": "an exact version", "value": "pneumonia:1"},
        },
    ),
]
