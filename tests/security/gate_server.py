"""Real API processes for the HTTP-layer attack tests, with limits small enough to cross in seconds, and a raw
socket client: the attacks (a trickled body, a slow or oversized head, a request that never sends its body)
cannot be made with an HTTP library that sends whole requests."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.app.api.support import make_key
from tests.app.live_server import Registry, Server, start_server, stop_server, zoo_checkpoint


@contextmanager
def gate_server(root: Path, **settings: Any) -> Iterator[tuple[Server, str]]:
    """The API on a registry with one small default model (`chest`) and an admin key; yields both."""
    registry = Registry.create(root)
    registry.publish(zoo_checkpoint("simple_cnn", root), "chest")
    admin_key = make_key(registry.url, "security-admin", "admin")
    server = start_server(registry, root / "server.log", default_model="chest", runtime_candidates="[]",
                          **settings)
    try:
        yield server, admin_key
    finally:
        stop_server(server)
        registry.db.dispose()


def connect(server: Server, timeout: float = 60.0) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body by Content-Length) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {data!r}")
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def closed_by_server(sock: socket.socket, timeout: float = 30.0) -> bool:
    """Whether the server closes `sock` (reads EOF) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def trickle(sock: socket.socket, data: bytes, per_second: float, chunk: int = 1) -> int:
    """Send `data` `chunk` bytes at a time at about `per_second` bytes a second, until all is sent or the server
    answers (it is never made to drop a response we have not read); returns the bytes sent."""
    sent = 0
    while sent < len(data):
        readable, _, _ = select.select([sock], [], [], chunk / per_second)
        if readable:
            break
        try:
            sock.sendall(data[sent:sent + chunk])
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += chunk
    return sent
