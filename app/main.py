"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api.access import AccessGate
from app.api.errors import UnhandledErrors, install_error_handlers
from app.api.headers import SecurityHeaders
from app.api.openapi import install_binary_uploads
from app.api.limits import InFlightLimit, RequestBodyLimit
from app.api.request_id import RequestIdMiddleware
from app.api.routes import (
    audit,
    datasets,
    evaluation_jobs,
    gradcam,
    health,
    keys,
    metrics,
    models,
    predict,
    preview,
    runs,
    training_jobs,
)
from app.drain import Drain
from app.serving.metrics import MetricsMiddleware, ServiceMetrics
from app.serving.predictor import Predictor
from app.settings import AppSettings
from app.state import AppState
from app.tasks import TaskQueue
from app.web import routes as web
from app.web.routes import install_static
from registry.artifacts import artifact_store
from registry.db import Database

log = logging.getLogger(__name__)

DESCRIPTION = """Chest X-ray classification: per-pathology probabilities and Grad-CAM overlays from models in
the registry, and training and evaluation jobs run by Celery workers. **Not for clinical use.**"""


def create_app(settings: AppSettings | None = None) -> FastAPI:
    settings = settings or AppSettings()
    service_metrics = ServiceMetrics(replica_id=settings.replica_id)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db, artifacts = Database(settings.database_url), artifact_store(settings.artifact_root)
        predictor = Predictor(settings=settings, db=db, artifacts=artifacts, metrics=service_metrics)
        state = AppState(settings=settings, db=db, artifacts=artifacts, metrics=service_metrics,
                         predictor=predictor, tasks=TaskQueue(settings),
                         drain=Drain(settings.drain_seconds),
                         readiness_checks={"default model loaded": predictor.models.default_status})
        drain = state.drain
        app.state.cxr = state
        await predictor.start()  # warms the default model; a missing one is reported by readiness
        drain.install(asyncio.get_running_loop())  # from now on SIGTERM first drains (app/drain.py)
        try:
            yield
        finally:
            drain.uninstall()
            await predictor.close()
            state.tasks.close()
            state.db.dispose()

    app = FastAPI(title="CXR service", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    # The last added runs first: metrics see every answer, headers go on every answer, a key is checked
    # before a body is read, bodies are bounded while read, then requests in flight are counted (keyed and
    # anonymous apart), and a bug below answers JSON without dropping the connection.
    app.add_middleware(UnhandledErrors)
    app.add_middleware(InFlightLimit, max_anonymous=settings.max_in_flight, max_keyed=settings.max_in_flight_keyed)
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes, timeout=settings.body_timeout_seconds,
                       min_rate=settings.body_min_rate_bytes, grace=settings.body_rate_grace_seconds)
    app.add_middleware(AccessGate, failed_key_limit=settings.failed_key_limit, open_predict=settings.open_predict)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=service_metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: the limits' refusals carry the id too
    install_error_handlers(app)
    for module in (health, metrics, models, web, training_jobs, evaluation_jobs, datasets, runs,
                   keys, audit):
        app.include_router(summaries_from_docstrings(module.router))
    upload_limits = {"max_files": settings.max_files_per_request}
    for module in (predict, gradcam, preview):
        app.include_router(summaries_from_docstrings(module.router), form_limits=upload_limits)
    install_binary_uploads(app)
    if settings.open_predict:
        key_optional(app, ["/predict", "/gradcam", "/preview"])
    install_static(app)
    return app


def key_optional(app: FastAPI, paths: list[str]) -> None:
    """Document that the POST routes at `paths` take a key but do not need one (`open_predict`)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for path in paths:
                operation = generate()["paths"][path]["post"]
                operation["security"] = [{}, *operation.get("security", [])]
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def summaries_from_docstrings(router: APIRouter) -> APIRouter:
    """Each route's one-line docstring becomes its OpenAPI summary (FastAPI would title the function name)."""
    for route in router.routes:
        doc = (route.endpoint.__doc__ or "").strip() if isinstance(route, APIRoute) else ""
        if doc and route.summary is None:
            route.summary = doc.splitlines()[0]
    return router
