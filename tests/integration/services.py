"""Real PostgreSQL and Redis for tests, shared with other engineers' sessions on the same servers.

Each test session gets a PostgreSQL database of its own (unique name, dropped at the end) and a Redis
database index of its own (held with a lock key in that index, released at the end), and uses a unique
queue namespace on top; nothing here runs FLUSHALL or FLUSHDB.

Policy: when `CXR_REQUIRE_SERVICES=1` (set by `.ci/run`) an unreachable service FAILS the test that
needs it; otherwise the test is skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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
