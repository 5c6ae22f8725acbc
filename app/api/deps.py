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

from app.serving.predictor import Predictor
from app.settings import AppSettings
from app.state import AppState
from registry.artifacts import LocalArtifactStore


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
    return state.extras["predictor"]


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[AppSettings, Depends(get_settings)]
# scope="function": the session commits before the response is sent (by default FastAPI runs a yield
# dependency's exit after sending, so a client's next request could miss the write it was just told about)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ArtifactsDep = Annotated[LocalArtifactStore, Depends(get_artifacts)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
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
