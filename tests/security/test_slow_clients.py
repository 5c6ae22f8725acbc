"""Slow clients cannot hold the service: a body trickled in, a body that takes too long in all, a head sent a
byte at a time, an oversized head or too many headers are each answered (408 / 431, JSON) and their
connection closed, while liveness and readiness keep answering. Against a real uvicorn process started the
way `cxr api` starts it (the head limits live in its HTTP protocol class)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.app.live_server import Server
from tests.security.gate_server import (
    closed_by_server,
    connect,
    error_of,
    gate_server,
    head,
    read_response,
    trickle,
)

pytestmark = pytest.mark.integration

LIMITS = {"body_timeout_seconds": 4, "body_min_rate_bytes": 100, "body_rate_grace_seconds": 1,
          "header_timeout_seconds": 2, "max_header_bytes": 8192, "max_headers": 50}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with gate_server(tmp_path_factory.mktemp("slow"), **LIMITS) as (running, _):
        yield running


PART = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n"


def _upload_head(length: int) -> bytes:
    return head("POST", "/predict", {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(length)})


def test_a_body_trickled_a_few_bytes_a_second_is_answered_408_and_closed(server: Server):
    body = PART + b"x" * 2000
    with connect(server) as sock:
        sock.sendall(_upload_head(len(body)))
        sent = trickle(sock, body, per_second=4)
        status, headers, answer = read_response(sock)
        assert (status, error_of(answer)) == (408, "request_timeout"), answer
        assert "too slowly" in answer.decode() and headers.get("connection") == "close"
        assert sent < len(body) and closed_by_server(sock)
    assert httpx.get(f"{server.url}/health/live").status_code == 200


def test_a_body_at_a_fair_rate_that_takes_too_long_in_all_is_answered_408(server: Server):
    body = PART + b"x" * 40_000  # 40 s at 1000 bytes/s: ten times the total allowed
    with connect(server) as sock:
        sock.sendall(_upload_head(len(body)))
        sent = trickle(sock, body, per_second=1000, chunk=50)
        status, _, answer = read_response(sock)
        assert (status, error_of(answer)) == (408, "request_timeout"), answer
        assert sent < len(body) and closed_by_server(sock)


def test_a_body_that_stops_arriving_is_answered_408(server: Server):
    with connect(server) as sock:
        sock.sendall(_upload_head(100_000) + PART)
        status, _, answer = read_response(sock)  # nothing more is sent: the server gives up, not us
        assert (status, error_of(answer)) == (408, "request_timeout"), answer


def test_a_head_sent_a_byte_at_a_time_is_answered_408_and_closed(server: Server):
    slow_head = head("GET", "/models", {f"X-Filler-{i}": "y" * 20 for i in range(20)})
    with connect(server) as sock:
        sent = trickle(sock, slow_head, per_second=20)
        status, _, answer = read_response(sock)
        assert (status, error_of(answer)) == (408, "request_timeout"), answer
        assert sent < len(slow_head) and closed_by_server(sock)


def test_an_oversized_head_is_answered_431_before_it_is_all_sent(server: Server):
    huge = head("GET", "/models", {"X-Big": "a" * 2_000_000})
    with connect(server) as sock:
        try:
            sock.sendall(huge)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: what we want
        status, _, answer = read_response(sock)
    assert (status, error_of(answer)) == (431, "headers_too_large"), answer


def test_too_many_headers_are_answered_431(server: Server):
    with connect(server) as sock:
        sock.sendall(head("GET", "/models", {f"X-H{i}": "1" for i in range(60)}))
        status, _, answer = read_response(sock)
        assert (status, error_of(answer)) == (431, "too_many_headers"), answer
        assert closed_by_server(sock)


def test_requests_within_the_limits_are_served_on_a_kept_alive_connection(server: Server):
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(head("GET", "/models", {f"X-H{i}": "1" for i in range(40)}))
            status, headers, _ = read_response(sock)
            assert status == 200 and headers.get("connection") != "close"
    ready = httpx.get(f"{server.url}/health/ready", timeout=30)
    assert ready.status_code == 200, ready.text
