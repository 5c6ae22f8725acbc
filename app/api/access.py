"""The caller's API key, checked before a route reads a byte of its body; wrong keys throttled per address.

`AccessGate` runs in front of every route. It finds which scope the matched route needs (from the `require`
dependencies in its signature, see `app.api.auth`), authenticates a presented key once, and answers 401 or 403
itself, so an unauthenticated upload is refused before it is read (and a malformed body from a stranger gets
401, not 422). The key it found (or None) is left in the request's state for the route's dependencies and for
`InFlightLimit`, which counts keyed and anonymous requests apart.

A client address that presents more than `limit` wrong or revoked keys in a minute gets 429 with Retry-After
for every request that presents a key until its failures age out; requests without a key are not affected.
Behind a proxy the address is the client's only if uvicorn trusts the proxy's forwarded headers (uvicorn's
`FORWARDED_ALLOW_IPS`, by default 127.0.0.1).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from typing import Any

import anyio
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import check_scope, route_scope
from app.api.errors import ApiError, error_response
from app.api.limits import KEY_STATE
from registry.keys import authenticate
from registry.records import ApiKeyRecord

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60.0
SEEN_PATHS = 4096


class FailedKeys:
    """Wrong keys per client address over the last minute (at most `max_addresses` addresses remembered)."""

    def __init__(self, limit: int, *, window: float = WINDOW_SECONDS, max_addresses: int = 10_000) -> None:
        self.limit, self.window, self.max_addresses = limit, window, max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[address]
        return times

    def retry_after(self, address: str, now: float | None = None) -> int | None:
        """Seconds until `address` may present a key again, or None if it may now."""
        now = time.monotonic() if now is None else now
        times = self._recent(address, now)
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[-self.limit] + self.window - now))

    def record(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._seen.setdefault(address, deque())
        self._seen.move_to_end(address)
        times.append(now)
        while len(times) > self.limit:
            times.popleft()
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key sent as `X-API-Key: KEY` or `Authorization: Bearer KEY`, if any."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
    return bearer


class AccessGate:
    def __init__(self, app: ASGIApp, *, failed_key_limit: int, open_predict: bool) -> None:
        self.app, self.open_predict = app, open_predict
        self.failures = FailedKeys(failed_key_limit)
        self._protected: list[tuple[RouteContext, str]] | None = None  # built from the app's routes on first use
        self._seen: dict[tuple[str, str], str | None] = {}  # (method, path) -> scope needed: ~0.3 µs, not ~30

    def _needed(self, scope: Scope) -> str | None:
        if self._protected is None:
            self._protected = []
            for context in iter_route_contexts(scope["app"].routes):  # routes of included routers too
                route = context.original_route
                needed = route_scope(route.dependant) if isinstance(route, APIRoute) else None
                if needed is not None and not (needed == "predict" and self.open_predict):
                    self._protected.append((context, needed))
        key = (scope["method"], scope["path"])
        if key in self._seen:
            return self._seen[key]
        needed = next((n for context, n in self._protected if context.matches(scope)[0] is Match.FULL), None)
        if len(self._seen) >= SEEN_PATHS:  # paths with ids vary without end: keep the memo bounded
            self._seen.clear()
        self._seen[key] = needed
        return needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = self._needed(scope)
        key = presented_key(scope["headers"])
        record: ApiKeyRecord | None = None
        try:
            if key is not None:
                record = await self._authenticate(scope, key, required=needed is not None)
            if needed is not None:
                check_scope(record, needed, key is not None)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[KEY_STATE] = record
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, key: str, *, required: bool) -> ApiKeyRecord | None:
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.failures.retry_after(address)
        if wait is not None:
            raise ApiError(429, "too_many_failed_keys", f"too many wrong API keys from {address} in the last "
                           f"minute; try again in {wait} s", headers={"Retry-After": str(wait)})
        try:
            record = await anyio.to_thread.run_sync(_lookup, scope["app"].state.cxr, key)
        except (OperationalError, InterfaceError) as exc:
            if not required:  # an open route goes on as an anonymous request
                return None
            log.warning("registry unreachable while checking a key: %s", " ".join(str(exc.orig or exc).split())[:300])
            raise ApiError(503, "registry_unavailable", "the registry database cannot be reached to check the "
                           "API key; nothing was changed, try again shortly", headers={"Retry-After": "5"}) from None
        if record is None:
            self.failures.record(address)
            log.info("wrong or revoked API key from %s", address)
        return record


def _lookup(state: Any, key: str) -> ApiKeyRecord | None:
    with state.db.session() as session:
        return authenticate(session, key=key)
