"""uvicorn's httptools protocol with limits on the request head: its size, its header count and its time.

uvicorn bounds none of them on the httptools parser (h11 bounds the size only, and answers 400): a client may
send a 64 MB header, which httptools buffers whole before the app sees the request, or a hundred thousand
headers, or its head one byte a second, holding a connection forever. Here a head over `max_header_bytes` or
`max_headers` is answered 431 and one not complete within `header_timeout_seconds` of its first byte 408, both
with the API's JSON error body, and the connection is closed.

The head's bytes are counted as they arrive (up to the blank line that ends it), before httptools buffers
them, so an oversized head costs at most one socket read beyond the limit. `cxr api` starts uvicorn with
`--http app.api.protocol:LimitedHttpToolsProtocol` (see `cxr.service_commands.api_argv`); the limits are the
API's settings, read once per process.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import AppSettings

_END_OF_HEAD = b"\r\n\r\n"


@cache
def _limits() -> tuple[int, int, float]:
    settings = AppSettings()
    return settings.max_header_bytes, settings.max_headers, settings.header_timeout_seconds


class HeadRefused(Exception):
    """Raised from a parser callback to stop httptools; `send_400_response` then answers `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.max_header_bytes, self.max_headers, self.header_timeout = _limits()
        self._in_head = True  # reading a request head (from its first byte until the blank line ending it)
        self._head_bytes = 0
        self._header_count = 0
        self._tail = b""  # the last bytes of the head so far, to find a blank line split across reads
        self._refused: HeadRefused | None = None
        self._pending: HeadRefused | None = None  # raised from a parser callback, answered by send_400_response
        self._head_timer: asyncio.TimerHandle | None = None

    # -- reads -------------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # the answer is sent and the connection closing: ignore what else arrives
        if self._in_head:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)
            window = self._tail + data
            end = window.find(_END_OF_HEAD)
            counted = len(data) if end < 0 else max(0, end + len(_END_OF_HEAD) - len(self._tail))
            self._head_bytes += counted
            self._tail = window[-(len(_END_OF_HEAD) - 1):]
            if self._head_bytes > self.max_header_bytes:
                self._refuse(HeadRefused(431, "headers_too_large", "the request head is larger than the "
                                         f"limit of {self.max_header_bytes:,} bytes"))
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._pending = HeadRefused(431, "too_many_headers", f"the request has more than {self.max_headers} "
                                                                 "header fields")
            raise self._pending  # httptools stops parsing and raises HttpParserCallbackError to uvicorn
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # the body is parsed too (whether or not the app read it): the next bytes begin the next request's head
        self._in_head, self._head_bytes, self._tail = True, 0, b""
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    # -- refusals ----------------------------------------------------------------------------------------

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and self._refused is None and not self.transport.is_closing():
            self._refuse(HeadRefused(408, "request_timeout", "the request head did not arrive within "
                                     f"{self.header_timeout:g} s"))

    def send_400_response(self, msg: str) -> None:
        """httptools refused the head, or a callback above stopped it: answer our refusal if there is one."""
        if self._pending is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._pending)

    def _refuse(self, error: HeadRefused) -> None:
        self._end_head()
        self._refused = error
        body = json.dumps({"error": error.code, "message": error.message}).encode()
        head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                "connection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.transport.close()
