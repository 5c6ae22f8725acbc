"""Real PostgreSQL and Redis for tests, shared with other engineers' sessions on the same servers.

Each test session gets a PostgreSQL database of its own (unique name, dropped at the end) and a Redis
database index of its own (held with a lock key in that index, released at the end), and uses a unique
queue namespace on top; nothing here runs FLUSHALL or FLUSHDB.

`LocalRedis` and `LocalPostgres` are servers of a test's own, for tests that stop and restart them.

Policy: when `CXR_REQUIRE_SERVICES=1` (set by `.ci/run`) an unreachable service FAILS the test that
needs it; otherwise the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("CXR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CXR_TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LOCK_KEY = "cxr:test-session-lock"


def unavailable(service: str, reason: str) -> None:
    """Fail (CI) or skip (a developer without the service) a test that needs `service`."""
    message = f"{service} unreachable: {reason}"
    if os.environ.get("CXR_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (CXR_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def session_tag() -> str:
    return f"{os.getpid()}_{uuid.uuid4().hex[:8]}"


@contextmanager
def postgres_database(prefix: str = "cxr_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(POSTGRES_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", " ".join(str(exc).split())[:200])
    name = f"{prefix}_{session_tag()}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis URL on a database index no other test session holds (1-15), released afterwards."""
    import redis

    token = uuid.uuid4().hex
    for index in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{index}", socket_connect_timeout=2)
        try:
            taken = client.set(_LOCK_KEY, token, nx=True, ex=3600)
        except redis.RedisError as exc:
            unavailable("Redis", " ".join(str(exc).split())[:200])
        if taken:
            break
    else:
        pytest.fail("every Redis database 1-15 is held by another test session", pytrace=False)
    try:
        yield f"{REDIS_URL}/{index}"
    finally:
        if client.get(_LOCK_KEY) == token.encode():
            client.delete(_LOCK_KEY)
        client.close()


def delete_redis_keys(url: str, namespace: str) -> None:
    """Remove what a session's queues left behind: the keys naming its namespace, and the messages a
    killed worker left unacknowledged in kombu's `unacked` hash (so they are never restored later)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    keys = list(client.scan_iter(match=f"*{namespace}*"))
    if keys:
        client.delete(*keys)
    for tag, message in client.hscan_iter("unacked"):
        if namespace.encode() in message:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.close()


class LocalRedis:
    """A redis-server of the test's own on a free port, which the test may stop and start again (same port)."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder, self.proc = port, folder, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server", "not installed")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class LocalPostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, trust auth, a free port), which
    the test may stop and start again. As root, the server runs as the `postgres` user (it refuses root)."""

    def __init__(self, port: int) -> None:
        # its own folder straight under /tmp: pytest's are private to root, and the server runs as postgres
        self.port, self.folder = port, Path(tempfile.mkdtemp(prefix="cxr-pg-"))
        self.data = self.folder / "pgdata"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            unavailable("PostgreSQL server binaries", "no /usr/lib/postgresql/*/bin/pg_ctl")
        self.bin = found[-1].parent

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}\n{done.stderr}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
