"""What the app holds while it runs; built in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.drain import Drain
from app.serving.metrics import ServiceMetrics
from app.serving.predictor import Predictor
from app.settings import AppSettings
from app.tasks import TaskQueue
from registry.artifacts import LocalArtifactStore
from registry.db import Database

ReadinessCheck = Callable[[], tuple[bool, str]]  # (ready, a message saying why not, or what is served)


@dataclass
class AppState:
    settings: AppSettings
    db: Database
    artifacts: LocalArtifactStore
    metrics: ServiceMetrics
    predictor: Predictor
    tasks: TaskQueue
    drain: Drain  # on SIGTERM, readiness answers 503 for `drain_seconds` before uvicorn stops (app/drain.py)
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)  # beyond the registry's own
