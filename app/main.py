"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.api.routes import health
from app.settings import AppSettings
from app.state import AppState
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
        app.state.cxr = state
        try:
            yield
        finally:
            state.db.dispose()

    app = FastAPI(title="CXR service", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    return app

