"""Dependencies, named once as `Annotated` aliases so a route's signature lists what it needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from app.serving.predictor import Predictor
from app.settings import AppSettings
from app.state import AppState
from registry.artifacts import LocalArtifactStore


def get_state(request: Request) -> AppState:
    return request.app.state.cxr


def get_settings(state: Annotated[AppState, Depends(get_state)]) -> AppSettings:
    return state.settings


def get_session(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


def get_artifacts(state: Annotated[AppState, Depends(get_state)]) -> LocalArtifactStore:
    return state.artifacts


def get_predictor(state: Annotated[AppState, Depends(get_state)]) -> Predictor:
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
