"""What the app holds while it runs; built in the lifespan, never at import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.settings import AppSettings
from registry.artifacts import LocalArtifactStore
from registry.db import Database


@dataclass
class AppState:
    settings: AppSettings
    db: Database
    artifacts: LocalArtifactStore
    extras: dict[str, Any] = field(default_factory=dict)  # components added by later parts (predictor, tasks)
