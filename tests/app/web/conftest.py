"""The API in a real uvicorn process with one small model, and Debian's Chromium driven by Playwright.

Playwright's own browser download does not work here (no network): it drives `/usr/bin/chromium`, which
`make test` installs. Screenshots are kept under `test-artifacts/web/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.live_server import REPO_ROOT, Registry, Server, start_server, stop_server, zoo_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry with one four-label model as the default, `chest`, and the API serving it."""
    root = tmp_path_factory.mktemp("web")
    registry = Registry.create(root)
    registry.publish(zoo_checkpoint("simple_cnn", root), "chest")
    server = start_server(registry, root / "server.log", default_model="chest")
    yield server
    stop_server(server)
    registry.db.dispose()


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CXR_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS
