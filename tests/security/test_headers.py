"""Security headers on every answer, and a Content-Security-Policy that the page and Swagger UI work under:
both load in Chromium without a single policy violation, the page still uploads and draws its bars, and
Swagger UI still renders and expands an operation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, expect, sync_playwright

from app.api.headers import CONTENT_SECURITY_POLICY
from tests.app.live_server import ZOO_LABELS, Server
from tests.app.web.conftest import CHROMIUM_ARGS, chromium_path, web_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", ["/", "/docs", "/models", "/static/app.js", "/no-such-route"])
def test_every_answer_carries_the_security_headers(web_server: Server, path: str):  # noqa: F811
    r = httpx.get(f"{web_server.url}{path}", timeout=30)
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY


def test_the_page_and_swagger_ui_work_under_the_policy(web_server: Server, chromium_path: Path,  # noqa: F811
                                                        data_dir: Path):
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", on_console)
        page.on("pageerror", lambda exc: violations.append(f"page error: {exc}"))

        page.goto(web_server.url)
        page.set_input_files("#file", str(data_dir / "samples" / "person1951_bacteria_4882.jpeg"))
        expect(page.locator("#bars .bar")).to_have_count(len(ZOO_LABELS))
        page.locator("#bars .bar").first.click()
        expect(page.locator("#overlay")).to_be_visible(timeout=30_000)  # a blob/data image under img-src

        page.goto(f"{web_server.url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("CXR service", timeout=30_000)
        page.locator("#operations-inference-predict_predict_post .opblock-summary").click()
        expect(page.locator(".opblock-body")).to_contain_text("multipart/form-data")
        browser.close()
    assert not violations, violations
