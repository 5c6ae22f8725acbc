"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api.errors import install_error_handlers
from app.api.routes import datasets, evaluation_jobs, health, model_versions, runs, training_jobs
from app.settings import AppSettings
from app.state import AppState
from app.tasks import TaskQueue
from registry.artifacts import artifact_store
from registry.db import Database

log = logging.getLogger(__name__)

DESCRIPTION = """Chest X-ray classification: per-pathology probabilities and Grad-CAM overlays from models in
the registry, and training and evaluation jobs run by Celery workers. **Not for clinical use.**"""


def create_app(settings: AppSettings | None = None) -> FastAPI:
    settings = settings or AppSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings=settings, db=Database(settings.database_url),
                         artifacts=artifact_store(settings.artifact_root))
        state.extras["tasks"] = TaskQueue(settings)
        app.state.cxr = state
        try:
            yield
        finally:
            state.extras["tasks"].close()
            state.db.dispose()

    app = FastAPI(title="CXR service", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (training_jobs, evaluation_jobs, datasets, runs, model_versions):
        app.include_router(_summaries_from_docstrings(module.router))
    return app


def _summaries_from_docstrings(router: APIRouter) -> APIRouter:
    """A route's one-line docstring is its OpenAPI summary (FastAPI would use the function's name)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.summary is None and route.description:
            route.summary = route.description.strip().splitlines()[0]
    return router

