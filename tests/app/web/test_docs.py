"""`/docs` in headless Chromium with every outside address unresolvable: Swagger UI must come from the app."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.app.live_server import Server
from tests.app.web.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.integration

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def test_docs_render_every_operation_offline(
    web_server: Server, chromium_path: Path, artifacts: Path
) -> None:
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=[*CHROMIUM_ARGS, OFFLINE])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{web_server.url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("CXR service", timeout=30_000)
        operations = page.locator(".opblock-summary-path")
        expect(operations.first).to_be_visible()
        paths = set(operations.evaluate_all("els => els.map(e => e.getAttribute('data-path'))"))
        spec = page.request.get(f"{web_server.url}/openapi.json").json()
        assert paths == set(spec["paths"]) and {"/predict", "/gradcam", "/models"} <= paths

        page.locator("#operations-inference-predict_predict_post .opblock-summary").click()
        expect(page.locator(".opblock-body")).to_contain_text("multipart/form-data")
        page.screenshot(path=str(artifacts / "docs.png"), full_page=False)
        browser.close()
    hosts = {urlsplit(url).hostname for url in requested if url.startswith("http")}
    assert hosts == {"127.0.0.1"}, hosts
