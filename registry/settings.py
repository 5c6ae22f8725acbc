"""Settings the API and the workers share (database, broker, artifact store, data roots); each process
subclasses them.

Read once from the environment (prefix `CXR_`) by pydantic-settings; tests construct them directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class RegistrySettings(BaseSettings):
    # An empty variable means "the default" (compose passes ${CXR_X:-} for settings left unset in .env).
    model_config = SettingsConfigDict(env_prefix="CXR_", env_file=None, extra="ignore", env_ignore_empty=True)

    database_url: str = Field(
        f"sqlite:///{REPO_ROOT / 'var' / 'registry.db'}",
        description="SQLAlchemy URL of the registry: SQLite (embedded) or postgresql+psycopg://...",
    )
    artifact_root: str = Field(
        str(REPO_ROOT / "var" / "artifacts"),
        description="where checkpoints, plots and reports are stored: a folder the API and every worker share "
                    "(file:// URIs; an object store would implement the same interface)",
    )
    broker_url: str = Field(
        f"sqla+sqlite:///{REPO_ROOT / 'var' / 'broker.db'}",
        description="Celery broker: redis://host:6379/0 in production; a SQLite file needs no server",
    )
    queue_namespace: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.\-]*$",
        description="prefix for the task queue names, so several deployments (or test sessions) share one broker",
    )
    broker_visibility_timeout: int = Field(
        2 * 24 * 3600,
        ge=1,
        description="Redis: seconds before an unacknowledged task is delivered again; longer than any run",
    )
    broker_connect_timeout: float = Field(
        3.0, gt=0, description="seconds to wait for the broker before a send fails (the API then answers 503)"
    )
    data_roots: list[Path] = Field(
        default_factory=lambda: [REPO_ROOT / "data"],
        description="folders datasets may be registered under (JSON list); paths elsewhere are refused",
    )
