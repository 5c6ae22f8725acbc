"""SIGTERM with a drain configured (`drain_seconds`, app/drain.py), on a real uvicorn process: readiness
answers 503 at once while every route keeps serving; the drain ends by itself, or at a second SIGTERM, and
the server then shuts down as before."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from registry.records import ModelVersionRecord
from tests.app.live_server import Registry, Server, start_server, stop_server
from tests.waiting import SETTLE_SECONDS, START_SECONDS

pytestmark = pytest.mark.integration


def _predict(server: Server, image: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", files={"file": ("x.png", image, "image/png")}, timeout=60)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def image(samples_dir: Path) -> bytes:
    return (samples_dir / "nih_cxr_1024.png").read_bytes()


def test_while_draining_readiness_fails_and_requests_are_still_served(
    registry: Registry, published: dict[str, ModelVersionRecord], image: bytes, tmp_path: Path
) -> None:
    server = start_server(registry, tmp_path / "server.log", drain_seconds=300, runtime_candidates="[]")
    try:
        _wait(lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200, START_SECONDS, "ready")
        server.process.send_signal(signal.SIGTERM)
        _wait(lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 503, SETTLE_SECONDS, "unready")
        ready = httpx.get(f"{server.url}/health/ready", timeout=10).json()
        assert ready["ready"] is False and ready["checks"] == {"not draining": False}
        assert "draining" in ready["messages"]["not draining"]
        assert _predict(server, image).status_code == 200  # new requests, new connections: still served
        assert httpx.get(f"{server.url}/health/live", timeout=10).status_code == 200
        assert server.process.poll() is None
        # a second SIGTERM ends the 300 s drain now
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        assert time.monotonic() - started < 60
        assert "Application shutdown complete" in server.log_tail()
    finally:
        stop_server(server)


def test_the_drain_ends_by_itself_and_the_server_shuts_down(
    registry: Registry, published: dict[str, ModelVersionRecord], tmp_path: Path
) -> None:
    server = start_server(registry, tmp_path / "server.log", drain_seconds=1, runtime_candidates="[]")
    try:
        _wait(lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200, START_SECONDS, "ready")
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=SETTLE_SECONDS)
        log = server.log_tail(20000)
        assert "draining for 1.0 s" in log and "Application shutdown complete" in log
        assert server.process.returncode == -signal.SIGTERM  # uvicorn re-raises the signal it was given
    finally:
        stop_server(server)


def test_without_a_drain_sigterm_stops_at_once(
    registry: Registry, published: dict[str, ModelVersionRecord], tmp_path: Path
) -> None:
    server = start_server(registry, tmp_path / "server.log", drain_seconds=0, runtime_candidates="[]")
    try:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        assert "draining" not in server.log_tail(20000)
        assert "Application shutdown complete" in server.log_tail()
    finally:
        stop_server(server)
