"""`/metrics` over real HTTP: every route by its template (static files and Swagger UI included), and the
per-model series labelled with the model's name and version."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.live_server import Server

pytestmark = pytest.mark.integration


def _samples(server: Server) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_every_route_is_counted_by_its_template(web_server: Server) -> None:
    paths = {"/": "/", "/docs": "/docs", "/openapi.json": "/openapi.json", "/static/app.js": "/static/{path}",
             "/static/vendor/uplot/uPlot.min.css": "/static/{path}", "/docs-assets/swagger-ui.css": "/docs-assets/{path}",
             "/samples": "/samples", "/runs/7": "/runs/{run_id}"}
    before = _samples(web_server)
    for path in paths:
        httpx.get(f"{web_server.url}{path}")
    assert httpx.get(f"{web_server.url}/no/such/page").status_code == 404
    refused = httpx.post(f"{web_server.url}/training-jobs", json={})  # answered by the key check, before routing
    assert refused.status_code == 401
    after = _samples(web_server)
    assert _value(after, "cxr_http_requests_total", method="POST", route="/training-jobs", status="401") - _value(
        before, "cxr_http_requests_total", method="POST", route="/training-jobs", status="401") == 1
    for path, route in paths.items():
        counted = sum(v - before.get(k, 0.0) for k, v in after.items()
                      if k[0] == "cxr_http_requests_total" and ("route", route) in k[1] and ("method", "GET") in k[1])
        assert counted >= 1, (path, route)
    unmatched = sum(v - before.get(k, 0.0) for k, v in after.items()
                    if k[0] == "cxr_http_requests_total" and ("route", "unmatched") in k[1])
    assert unmatched == 1  # only the path no route serves


def test_inference_series_carry_the_model_and_its_version(web_server: Server, data_dir) -> None:
    model = {"model": "chest", "version": "1"}
    before = _samples(web_server)
    image = (data_dir / "samples" / "nih_cxr_1024.png").read_bytes()
    assert httpx.post(f"{web_server.url}/predict", files={"file": ("x.png", image, "image/png")}).status_code == 200
    bad = httpx.post(f"{web_server.url}/predict", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "image/png")})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_image"
    unknown = httpx.post(f"{web_server.url}/gradcam", params={"target": "Fracture"},
                         files={"file": ("x.png", image, "image/png")})
    assert unknown.status_code == 422
    after = _samples(web_server)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("cxr_inference_seconds_count", **model, kind="predict") >= 1
    assert delta("cxr_inference_errors_total", **model, kind="predict", reason="invalid_image") == 1
    assert delta("cxr_inference_errors_total", **model, kind="gradcam", reason=unknown.json()["error"]) == 1
    assert delta("cxr_inference_queue_wait_seconds_count", **model) >= 1
    assert delta("cxr_inference_batch_size_count", **model) >= 1
    assert _value(after, "cxr_model_loaded", **model, architecture="simple_cnn") == 1
    assert _value(after, "cxr_model_load_seconds_count", **model) >= 1
    assert _value(after, "cxr_models_loaded") == 1
