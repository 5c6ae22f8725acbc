"""Alembic environment: the registry's metadata, the URL from the caller or the settings."""

from __future__ import annotations

from alembic import context

from registry import tables  # registers the tables on the metadata
from registry.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from registry.settings import RegistrySettings

        url = RegistrySettings().database_url
    return url


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render the registry's column types by what the database sees (plain JSON, timestamp with zone)."""
    if type_ == "type" and isinstance(obj, tables.JSON):
        return "sa.JSON()"
    if type_ == "type" and isinstance(obj, tables.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True,
                      render_item=_render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # batch mode lets ALTER TABLE work on SQLite as well as PostgreSQL
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, render_item=_render_item)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
