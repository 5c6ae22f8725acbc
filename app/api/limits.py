"""Limits for every route, answered as the API's JSON error: the request body's size and pace, and requests in
flight.

A request whose `Content-Length` is over the size limit is refused before a byte of its body is read; one
without it (chunked) is counted while it is read and stopped at the limit, so no body is ever buffered past it.
(FastAPI's own `max_body_size` does the same but answers an early refusal in plain text.) A body must also
arrive in time: within `timeout` seconds in all and, after `grace` seconds, at no less than `min_rate` bytes a
second on average; a slower one is answered 408 and its connection closed, so a client trickling a byte a
second cannot hold a request slot. Only the time spent waiting for the client counts: a busy server that is
slow to read a body it already has does not make the client late. (The request head has its own limits, in `app.api.protocol`.)
"""

from __future__ import annotations

import asyncio
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

KEY_STATE = "cxr_key"  # scope["state"] entry set by `app.api.access.AccessGate`: the caller's valid key or None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit:,} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(408, message, headers={"Connection": "close"})


class RequestBodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, *, timeout: float = 120.0, min_rate: int = 16 * 1024,
                 grace: float = 5.0) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.timeout, self.min_rate, self.grace = timeout, min_rate, grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            await error_response(413, "too_large", error.detail)(scope, receive, send)
            return
        received = 0
        waited = 0.0  # seconds spent waiting for the client: time the app spends elsewhere is not its fault
        complete = False  # the body has arrived: later receives wait for a disconnect, which takes its time

        async def counted() -> Message:
            nonlocal received, waited, complete
            if complete:
                return await receive()
            budget = min(self.timeout, self.grace + received / self.min_rate) - waited
            if budget <= 0:
                raise self._too_slow(received, waited)
            began = time.monotonic()
            try:
                async with asyncio.timeout(budget):  # a few µs; anyio's cancel scope costs ~4x as much
                    message = await receive()
            except TimeoutError:
                raise self._too_slow(received, waited + time.monotonic() - began) from None
            waited += time.monotonic() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # the route's error handler answers it as JSON
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, counted, send)

    def _too_slow(self, received: int, waited: float) -> BodyTooSlow:
        if waited >= self.timeout:
            return BodyTooSlow(f"the request body did not arrive within {self.timeout:g} s")
        return BodyTooSlow(f"the request body is arriving too slowly ({received:,} bytes in {waited:.1f} s; at "
                           f"least {self.min_rate:,} bytes/s is needed)")


class InFlightLimit:
    """At most `max_anonymous` requests without a valid API key and `max_keyed` with one are handled at once by
    this process, counted apart, so anonymous uploads that stall cannot crowd out keyed callers; the next one
    of a kind is answered 503 with `Retry-After` straight away, never queued. Liveness, readiness and metrics
    are never counted, so they stay answerable under any load.

    A request counts from when it arrives until its response has been sent (a streamed body included). Whether
    it has a valid key is `AccessGate`'s finding, which runs before this.
    """

    EXEMPT = ("/health/live", "/health/ready", "/metrics")

    def __init__(self, app: ASGIApp, max_anonymous: int, max_keyed: int, retry_after_seconds: int = 1) -> None:
        self.app, self.retry_after = app, str(retry_after_seconds)
        self.limits = {False: max_anonymous, True: max_keyed}
        self.in_flight = {False: 0, True: 0}  # one event loop per process: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        keyed = scope.get("state", {}).get(KEY_STATE) is not None
        limit = self.limits[keyed]
        if self.in_flight[keyed] >= limit:
            kind = "requests with an API key" if keyed else "requests without an API key"
            message = (f"the service is handling {limit} {kind} already; try again in {self.retry_after} s")
            await error_response(503, "overloaded", message, headers={"Retry-After": self.retry_after})(
                scope, receive, send)
            return
        self.in_flight[keyed] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[keyed] -= 1
