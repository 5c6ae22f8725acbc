"""The API in-process (TestClient) over a migrated SQLite registry and a real broker: kombu's
SQLAlchemy transport on a SQLite file, the embedded default, so what a request queued can be counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import AppSettings
from registry.migrate import upgrade
from tests.app.api.support import make_key, make_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> AppSettings:
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "data").mkdir()
    s = make_settings(tmp, data_dir)
    upgrade(s.database_url)
    return s


@pytest.fixture(scope="module")
def admin_key(settings: AppSettings) -> str:
    return make_key(settings.database_url, "test-admin", "admin")


@pytest.fixture(scope="module")
def client(settings: AppSettings, admin_key: str) -> Iterator[TestClient]:
    """The API, every request sent with an admin key (tests/app/api/test_access.py checks without)."""
    with TestClient(create_app(settings), headers={"X-API-Key": admin_key}) as c:
        yield c


@pytest.fixture(scope="module")
def pneumonia(client: TestClient) -> dict:
    r = client.post("/datasets", json={"name": "pneumo", "kind": "pneumoniamnist",
                                       "path": "pneumoniamnist/pneumoniamnist.npz"})
    assert r.status_code == 201, r.text
    return r.json()

