"""Keys before bodies, keyed callers apart from strangers, wrong keys throttled: against a real API process.

* A protected route answers 401 (or 403) before it reads a byte of the body: a request that declares a
  10 MB body and never sends it is answered at once, and a malformed body from a stranger gets 401, not 422.
* Anonymous uploads that stall fill the anonymous slots only: readiness, liveness and callers with a valid
  key are still served, and anonymous requests get 503 with Retry-After until the stalled ones end.
* After `failed_key_limit` wrong keys in a minute an address gets 429 with Retry-After for any request that
  presents a key; requests without a key are served as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.live_server import Server
from tests.security.gate_server import connect, error_of, gate_server, head, read_response

pytestmark = pytest.mark.integration

ANONYMOUS_SLOTS = 3


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    # slow bodies are given a long grace here: these tests need uploads that stay stalled while they look
    with gate_server(tmp_path_factory.mktemp("gate"), max_in_flight=ANONYMOUS_SLOTS, max_in_flight_keyed=8,
                     failed_key_limit=5, body_rate_grace_seconds=120, body_timeout_seconds=300) as running:
        yield running


def _upload_head(**headers: Any) -> bytes:
    return head("POST", "/predict", {"Content-Type": "multipart/form-data; boundary=b",
                                     "Content-Length": "10000000", **headers})


@pytest.mark.parametrize("path", ["/training-jobs", "/datasets", "/evaluation-jobs", "/keys"])
def test_a_protected_route_answers_401_without_waiting_for_the_body(keyed_server, path):
    server, _ = keyed_server
    with connect(server, timeout=30) as sock:  # the body is declared but never sent
        sock.sendall(head("POST", path, {"Content-Type": "application/json", "Content-Length": "10000000"}))
        status, headers, answer = read_response(sock)
    assert (status, error_of(answer)) == (401, "unauthorized"), answer
    assert headers["www-authenticate"].startswith("Bearer")


def test_a_malformed_body_from_a_stranger_gets_401_not_422(keyed_server):
    server, _ = keyed_server
    r = httpx.post(f"{server.url}/training-jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text


def test_a_key_without_the_scope_gets_403_before_the_body(keyed_server, tmp_path):
    from tests.app.api.support import make_key

    server, _ = keyed_server
    database_url = server_registry_url(server)
    predict_only = make_key(database_url, "predict-only", "predict")
    with connect(server, timeout=30) as sock:
        sock.sendall(head("POST", "/training-jobs", {"Content-Type": "application/json",
                                                     "Content-Length": "10000000", "X-API-Key": predict_only}))
        status, _, answer = read_response(sock)
    assert (status, error_of(answer)) == (403, "forbidden"), answer


def server_registry_url(server: Server) -> str:
    """The SQLite registry the server reads (the test fixture keeps it beside the server's log)."""
    return f"sqlite:///{server.log_path.parent / 'registry.db'}"


def test_stalled_anonymous_uploads_leave_readiness_and_keyed_callers_served(keyed_server):
    server, admin_key = keyed_server
    with ExitStack() as stack:
        for _ in range(ANONYMOUS_SLOTS):  # each sends its head and a few body bytes, then stalls
            sock = stack.enter_context(connect(server, timeout=30))
            sock.sendall(_upload_head() + b"--b\r\n")
        _wait_until_refused(server)  # the stalled uploads hold every anonymous slot
        anonymous = httpx.get(f"{server.url}/models", timeout=30)
        assert anonymous.status_code == 503 and anonymous.headers["retry-after"], anonymous.text
        assert httpx.get(f"{server.url}/health/ready", timeout=30).status_code == 200
        assert httpx.get(f"{server.url}/health/live", timeout=30).status_code == 200
        keyed = httpx.get(f"{server.url}/models", headers={"X-API-Key": admin_key}, timeout=30)
        assert keyed.status_code == 200, keyed.text
        wrong = httpx.get(f"{server.url}/models", headers={"X-API-Key": "cxr_00000000_" + "x" * 40}, timeout=30)
        assert wrong.status_code == 503  # a wrong key on an open route is a stranger, not a keyed caller
    _wait_until_served(server)  # the sockets closed: the slots are free again


def _wait_until_refused(server: Server, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/models", timeout=30).status_code != 503:
        assert time.monotonic() < deadline, "the stalled uploads never filled the anonymous slots"
        time.sleep(0.1)


def _wait_until_served(server: Server, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/models", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the anonymous slots were not freed when the uploads closed"
        time.sleep(0.1)


@pytest.fixture
def throttling_server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A server of this test's own: other tests' wrong keys must not count against its budget."""
    with gate_server(tmp_path, failed_key_limit=5) as running:
        yield running


def test_wrong_keys_are_throttled_per_address_with_retry_after(throttling_server):
    server, admin_key = throttling_server
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wrong = {"X-API-Key": "cxr_deadbeef_" + "w" * 40}
        statuses = [client.post("/training-jobs", json={}, headers=wrong).status_code for _ in range(5)]
        assert statuses == [401] * 5
        throttled = client.post("/training-jobs", json={}, headers=wrong)
        assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_failed_keys", throttled.text
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # while throttled, a key from this address is not even looked at; requests without one go on
        assert client.get("/models", headers={"X-API-Key": admin_key}).status_code == 429
        assert client.get("/models").status_code == 200


def test_a_refused_request_with_a_large_body_leaves_its_connection_usable(keyed_server):
    server, _ = keyed_server
    body = b'{"model": "' + b"x" * 100_000 + b'"}'  # far larger than a request head may be
    with connect(server, timeout=30) as sock:
        sock.sendall(head("POST", "/training-jobs", {"Content-Type": "application/json",
                                                     "Content-Length": str(len(body))}) + body)
        status, _, answer = read_response(sock)
        assert (status, error_of(answer)) == (401, "unauthorized"), answer
        sock.sendall(head("GET", "/health/live"))  # the unread body is skipped, not taken for the next head
        status, _, answer = read_response(sock)
        assert status == 200, answer
