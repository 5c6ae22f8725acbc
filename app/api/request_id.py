"""Request ids: every response carries `X-Request-ID`, and every log line written while serving the request
names it.

A proxy in front (deploy/haproxy) adds the header when a client sent none and passes a client's own through;
the API keeps an id it is given when it looks like one (1-128 of `A-Z a-z 0-9 . _ : -`, the proxy's rule
too) and makes one otherwise, so a forged header cannot put arbitrary text in the logs.

Each request runs in a task of its own (uvicorn's), so the id is held in a context variable set for that
task: uvicorn's access log line, written when the response starts, and an unhandled error's traceback see it
through `RequestIdFilter` (installed by `cxr api`'s logging configuration, `app/logging.json`).
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("cxr_request_id", default=None)


def accepted(value: bytes | None) -> str:
    """The id to use for a request that sent `value` (None: no header)."""
    if value is not None and VALID.fullmatch(value):
        return value.decode("ascii")
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope["headers"] if k == HEADER), None)
        rid = accepted(sent)
        request_id.set(rid)
        header = (HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*(h for h in message.get("headers", []) if h[0].lower() != HEADER),
                                      header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIdFilter(logging.Filter):
    """Gives every log record a `request_id` attribute ('-' outside a request) for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True
