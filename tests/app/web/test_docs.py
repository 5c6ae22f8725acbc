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


def test_try_it_out_uploads_two_files_to_predict(web_server: Server, chromium_path: Path, data_dir: Path,
                                                  artifacts: Path) -> None:
    """`file` is declared as binary, so Swagger UI offers a file picker per item, and Execute sends them."""
    samples = [data_dir / "samples" / "nih_cxr_1024.png", data_dir / "samples" / "person1951_bacteria_4882.jpeg"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"{web_server.url}/docs")
        operation = page.locator("#operations-inference-predict_predict_post")
        operation.locator(".opblock-summary").click()
        body = operation.locator('.opblock-section-request-body tr[data-property-name="file"]')
        pickers = body.locator('input[type="file"]')
        expect(pickers).to_have_count(1)
        body.locator(".json-schema-form-item-add").click()
        expect(pickers).to_have_count(2)
        for picker, sample in zip(pickers.all(), samples, strict=True):
            picker.set_input_files(str(sample))
        with page.expect_response(lambda r: r.url.startswith(f"{web_server.url}/predict")) as answer:
            operation.locator(".execute").click()
        response = answer.value
        assert response.status == 200, response.text()
        results = response.json()
        assert [r["filename"] for r in results] == [s.name for s in samples]
        expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200")
        page.screenshot(path=str(artifacts / "docs-try-predict.png"), full_page=False)
        browser.close()


def test_every_error_example_is_what_the_service_answers(web_server: Server) -> None:
    """The documented example of each upload error is the body a request of that kind gets."""
    import httpx

    spec = httpx.get(f"{web_server.url}/openapi.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    example = {status: r["content"]["application/json"]["example"] for status, r in responses.items()
               if status != "200" and "example" in r.get("content", {}).get("application/json", {})}
    assert {"400", "404", "413", "415", "422", "503"} <= set(example)
    assert all("job 42" not in e["message"] for e in example.values())
    png = (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    sent = {
        "400": httpx.post(f"{web_server.url}/predict", files=[("file", ("a.png", b"x", "image/png"))] * 17),
        "404": httpx.post(f"{web_server.url}/predict?model=chest14", files={"file": ("a.png", b"x", "image/png")}),
        "415": httpx.post(f"{web_server.url}/predict", json={}),
        "422": httpx.post(f"{web_server.url}/predict", files={"file": ("scan.png", png, "image/png")}),
    }
    for status, response in sent.items():
        assert str(response.status_code) == status, response.text
        body = response.json()
        assert body["error"] == example[status]["error"], (status, body)
        if status != "404":  # the 404 names the registry's models, which differ per deployment
            assert body["message"] == example[status]["message"], (status, body)


def test_the_sample_example_is_the_shipped_sample(web_server: Server) -> None:
    import httpx

    spec = httpx.get(f"{web_server.url}/openapi.json").json()
    fields = spec["components"]["schemas"]["Sample"]["properties"]
    example = {name: field["examples"][0] for name, field in fields.items()}
    listed = {s["name"]: s for s in httpx.get(f"{web_server.url}/samples").json()}
    assert listed[example["name"]] == example
