"""The registry changes under a running server: aliases move, a stored checkpoint is altered, the default
model appears late, the cache fills up. The server follows without a restart and never drops a request."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Self

import httpx
import pytest

from app.main import create_app
from app.settings import AppSettings
from registry.records import ModelVersionRecord
from registry.versions import set_alias
from tests.app.live_server import Registry, Server, zoo_checkpoint
from tests.waiting import SETTLE_SECONDS

pytestmark = pytest.mark.integration


class Hammer:
    """Sends `/predict` for one model reference back to back on a thread, recording (status, version)."""

    def __init__(self, server: Server, model: str, image: bytes) -> None:
        self.server, self.model, self.image = server, model, image
        self.answers: list[tuple[int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as client:
            while not self._stop.is_set():
                r = client.post(
                    "/predict",
                    params={"model": self.model},
                    files=[("file", ("x.png", self.image, "image/png"))],
                )
                self.answers.append((r.status_code, r.json().get("model", {}).get("version")))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, version: int, timeout: float = SETTLE_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1][1] == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"version {version} never served: {self.answers[-5:]}")


def _metric(client: httpx.Client, series: str) -> float:
    """A Prometheus series' value from /metrics (0 while it does not exist)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait(condition, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture(scope="module")
def image(samples_dir: Path) -> bytes:
    return (samples_dir / "nih_cxr_1024.png").read_bytes()


def test_an_alias_moved_to_a_new_version_is_served_without_restart_or_failed_requests(
    server: Server, registry: Registry, trained_checkpoint: Path, image: bytes, tmp_path: Path
) -> None:
    first = registry.publish(trained_checkpoint, "mover")
    second = registry.publish(
        zoo_checkpoint("simple_cnn", tmp_path, labels=["Pneumonia"]), "mover", alias=None
    )
    with Hammer(server, "mover", image) as hammer:
        hammer.wait_for(first.version)
        with registry.db.session() as session:
            set_alias(session, name="mover", alias="production", version=second.version)
        hammer.wait_for(second.version)
        seen = len(hammer.answers)
        while len(hammer.answers) < seen + 5:
            time.sleep(0.05)
    statuses = {status for status, _ in hammer.answers}
    versions = [version for _, version in hammer.answers]
    assert statuses == {200}, hammer.answers
    switch = versions.index(second.version)
    assert set(versions[:switch]) == {first.version} and set(versions[switch:]) == {second.version}, versions


def test_a_checkpoint_whose_bytes_changed_is_refused_and_the_old_version_keeps_serving(
    server: Server, client: httpx.Client, registry: Registry, trained_checkpoint: Path, image: bytes
) -> None:
    good = registry.publish(trained_checkpoint, "guarded")
    bad = registry.publish(trained_checkpoint, "guarded", alias=None)
    stored = registry.store.path_of(bad.checkpoint.uri)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: torch would load it without a murmur
    stored.write_bytes(bytes(data))

    refused = client.post(
        "/predict", params={"model": bad.ref}, files=[("file", ("x.png", image, "image/png"))]
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "integrity_failure"
    assert "guarded:2 is refused" in refused.json()["message"] and "sha256" in refused.json()["message"]

    failures = f'cxr_model_load_failures_total{{model="guarded",reason="integrity_failure",version="{bad.version}"}}'
    refused_before = _metric(client, failures)
    with Hammer(server, "guarded", image) as hammer:
        hammer.wait_for(good.version)
        with registry.db.session() as session:
            set_alias(session, name="guarded", alias="production", version=bad.version)
        # the refresh tries the new version and refuses it; then a few more answers, all from the old one
        _wait(lambda: _metric(client, failures) > refused_before, "the moved alias was never tried")
        tried_at = len(hammer.answers)
        _wait(lambda: len(hammer.answers) >= tried_at + 5, "no answers after the refusal")
    assert hammer.answers and {a for a in hammer.answers} == {(200, good.version)}, hammer.answers[-5:]


def test_the_cache_keeps_the_most_recently_used_models(
    client: httpx.Client, image: bytes, published: dict[str, ModelVersionRecord]
) -> None:
    names = ["zoo-simple_cnn", "zoo-vgg_small", "zoo-vit_tiny", "zoo-squeezenet1_1", "pneumonia"]
    for name in names:  # five models through a cache of four: the first one is evicted
        r = client.post("/predict", params={"model": name}, files=[("file", ("x.png", image, "image/png"))])
        assert r.status_code == 200, r.text
    loaded = {
        m["name"] for m in client.get("/models").json()["items"] if any(v["loaded"] for v in m["versions"])
    }
    assert loaded == set(names[1:])
    assert "cxr_models_loaded 4.0" in client.get("/metrics").text
    again = client.post(
        "/predict", params={"model": names[0]}, files=[("file", ("x.png", image, "image/png"))]
    )
    assert again.status_code == 200 and again.json()["model"]["ref"] == published[names[0]].ref


def test_start_up_without_the_default_model_is_not_ready_until_it_is_published(
    tmp_path: Path, trained_checkpoint: Path, image: bytes
) -> None:
    empty = Registry.create(tmp_path)
    settings = AppSettings(
        database_url=empty.url, artifact_root=str(empty.store.root), alias_refresh_seconds=0.1
    )
    app = create_app(settings)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):  # start-up does not fail
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["default model loaded"] is False
                assert "no model named 'pneumonia'" in ready.json()["messages"]["default model loaded"]
                missing = await client.post("/predict", files=[("file", ("x.png", image, "image/png"))])
                assert missing.status_code == 404 and missing.json()["error"] == "not_found"

                await asyncio.to_thread(empty.publish, trained_checkpoint, "pneumonia")
                for _ in range(100):
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                assert (await client.get("/health/ready")).json()["ready"] is True
                served = await client.post("/predict", files=[("file", ("x.png", image, "image/png"))])
                assert served.status_code == 200 and served.json()["model"]["ref"] == "pneumonia:1"

    asyncio.run(scenario())
    empty.db.dispose()
