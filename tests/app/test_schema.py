"""Property-based run over the whole OpenAPI schema (schemathesis) against the app in-process, with an admin
key: for every operation, generated requests never get a 5xx, and every response has a documented status,
content type, headers and body schema. Bounded: a few examples per operation, no deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from app.main import create_app
from tests.app.api.support import make_key, make_settings
from tests.app.live_server import Registry, zoo_checkpoint

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[tuple[FastAPI, str]]:
    """The app on a registry with one small model and an embedded broker, started (lifespan) for the module."""
    tmp = tmp_path_factory.mktemp("schema")
    (tmp / "data").mkdir()
    s = make_settings(tmp, data_dir, open_predict=False, default_model="chest")
    registry = Registry.create(tmp)  # the same files as the settings name, with a default model to serve
    registry.publish(zoo_checkpoint("simple_cnn", tmp), "chest")
    registry.db.dispose()
    key = make_key(s.database_url, "schema-admin-7f3c9b2e41d8", "admin")
    app = create_app(s)
    with TestClient(app):  # runs the lifespan; the schema's own calls reuse the started app
        yield app, key


@pytest.fixture(scope="module")
def api_schema(running: tuple[FastAPI, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", running[0])


# every operation of the schema, read from an app that is never started (building the schema needs no state)
OPERATIONS = [(method.upper(), path) for path, ops in create_app().openapi()["paths"].items() for method in ops]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_as_documented(api_schema, running, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
              database=None)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": running[1]}, checks=CHECKS)

    check()
