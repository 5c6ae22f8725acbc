"""A bug below the routes answers 500 with the API's JSON error body and keeps the connection open (Starlette's
own net answers plain text and uvicorn then closes a keep-alive connection), and the traceback is logged."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.app.live_server import REPO_ROOT, Server, free_port, stop_server
from tests.security.gate_server import connect, head, read_response
from tests.waiting import START_SECONDS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    port, log_path = free_port(), tmp_path_factory.mktemp("catch_all") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "tests.security.failing_app:create_app",
                                    "--host", "127.0.0.1", "--port", str(port)], cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
    running = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{running.url}/fine", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, running.log_tail()
            time.sleep(0.2)
    yield running
    stop_server(running)


def test_a_bug_answers_json_500_and_the_connection_stays_open(server: Server):
    with connect(server, timeout=30) as sock:
        sock.sendall(head("GET", "/bug"))
        status, headers, body = read_response(sock)
        assert status == 500 and headers["content-type"] == "application/json", body
        assert json.loads(body)["error"] == "internal_error" and "ZeroDivision" not in body.decode()
        assert headers.get("connection") != "close"
        sock.sendall(head("GET", "/fine"))  # the same connection answers the next request
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body) == {"status": "ok"}
    assert "ZeroDivisionError: a bug, not an input error" in server.log_path.read_text()
