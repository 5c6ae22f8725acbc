"""Overload: a real uvicorn server with `max_in_flight=16` under 200 concurrent /predict requests answers
each at once with 200, or 503 (or 429) with Retry-After, and serves normally straight afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.live_server import Registry, Server, start_server, stop_server, zoo_checkpoint

pytestmark = pytest.mark.integration

SAMPLE = "person1951_bacteria_4882.jpeg"


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("overload")
    registry = Registry.create(root)
    registry.publish(zoo_checkpoint("simple_cnn", root), "chest")
    server = start_server(registry, root / "server.log", default_model="chest", max_in_flight=16,
                          inference_workers=2, inference_threads=1)
    yield server
    stop_server(server)
    registry.db.dispose()
    assert "Traceback" not in server.log_path.read_text(), server.log_tail(20000)


async def _burst(url: str, image: bytes, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one() -> httpx.Response:
            return await client.post("/predict", files={"file": (SAMPLE, image, "image/jpeg")})

        return await asyncio.gather(*(one() for _ in range(n)))


def test_a_burst_beyond_the_bound_is_refused_at_once_and_service_goes_on(small_server: Server, data_dir: Path):
    image = (data_dir / "samples" / SAMPLE).read_bytes()
    answers = asyncio.run(_burst(small_server.url, image, 200))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429, 503}, sorted(set(statuses))
    refused = [r for r in answers if r.status_code in (429, 503)]
    for r in refused:
        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "overloaded", r.text
    assert refused, "200 requests at once never crossed a bound of 16"
    assert statuses.count(200) >= 16
    print(f"200 concurrent: {statuses.count(200)} served, {len(refused)} refused with Retry-After")

    after = httpx.post(f"{small_server.url}/predict", files={"file": (SAMPLE, image, "image/jpeg")}, timeout=60)
    assert after.status_code == 200 and after.json()["model"]["name"] == "chest"
    assert httpx.get(f"{small_server.url}/health/live").status_code == 200
