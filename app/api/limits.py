"""Limits for every route, answered as the API's JSON error: the request body size, and requests in flight.

A request whose `Content-Length` is over the limit is refused before a byte of its body is read; one without
it (chunked) is counted while it is read and stopped at the limit, so no body is ever buffered past it.
(FastAPI's own `max_body_size` does the same but answers an early refusal in plain text.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit:,} bytes")


class RequestBodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

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

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # the route's error handler answers it as JSON
            return message

        await self.app(scope, counted, send)


class InFlightLimit:
    """At most `max_in_flight` requests handled at once by this process; the next one is answered 503 with
    `Retry-After` straight away, never queued. Liveness and metrics stay answerable under any load.

    A request counts from when it arrives until its response has been sent (a streamed body included).
    """

    EXEMPT = ("/health/live", "/metrics")

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_seconds: int = 1) -> None:
        self.app, self.max_in_flight, self.retry_after = app, max_in_flight, str(retry_after_seconds)
        self.in_flight = 0  # one event loop per process: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            message = (f"the service is handling {self.max_in_flight} requests already; try again in "
                       f"{self.retry_after} s")
            await error_response(503, "overloaded", message, headers={"Retry-After": self.retry_after})(
                scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
