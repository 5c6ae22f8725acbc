"""Every error leaves as JSON `{"error": code, "message": text, "details": [...]}` with a 4xx status
that says what is wrong; the domain errors of the services, serving, the registry and the library map to
their statuses here, once. (`ApiError` is for routes and the HTTP layer only.)"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.errors import JobNotSent, ServiceError
from app.serving.errors import ServingError
from registry.errors import Conflict, IntegrityFailure, NotFound

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    error: str = Field(description="a stable machine-readable code")
    message: str = Field(description="what is wrong, for a person")
    details: list[dict[str, Any]] | None = Field(None, description="per-field problems, when there are several")


class ApiError(Exception):
    """Raise in a route to answer `status` with a JSON error body."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.details = status, code, message, headers, details


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


# What the service answers for these statuses on any route (messages copied from where they are raised);
# statuses whose answer depends on the route (404, 409) take their example from the route.
EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Too many files. Maximum number of files is 16."),
    401: ("unauthorized", "this route needs an API key: send `X-API-Key: KEY` or `Authorization: Bearer KEY`"),
    403: ("forbidden", "API key 'ci' has scopes predict; this route needs 'train'"),
    413: ("file_too_large", "'scan.png' is larger than the limit of 33,554,432 bytes per file"),
    415: ("unsupported_content_type", "the request body is application/json: send the X-ray as "
          "multipart/form-data in the field 'file'"),
    422: ("validation_error", "limit: Input should be less than or equal to 200"),
    503: ("overloaded", "model pneumonia:2 has 64 images waiting (limit 64); try again shortly"),
}


def error_responses(*statuses: int, examples: dict[int, tuple[str, str]] | None = None,
                    ) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error body for `statuses`, each with an example of what
    the service really answers: `examples` ({status: (code, message)}) for this route, else `EXAMPLES`."""
    known = {**EXAMPLES, **(examples or {})}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody}
        if status in known:
            code, message = known[status]
            entry["content"] = {"application/json": {"example": {"error": code, "message": message}}}
        responses[status] = entry
    return responses


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")} for e in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
        return error_response(422, "validation_error", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
                413: "too_large"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(ServingError)
    async def _serving(_: Request, exc: ServingError) -> JSONResponse:
        if exc.status >= 409:
            log.info("refused (%s): %s", exc.code, exc)
        return error_response(exc.status, exc.code, str(exc), headers=exc.headers, details=exc.details)

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, JobNotSent):  # saved, not sent: say when to look again and where the job is
            return error_response(503, exc.code, exc.message, details=exc.details,
                                  headers={"Retry-After": str(exc.retry_after), "Location": exc.location})
        return error_response(422, exc.code, exc.message, details=exc.details)  # the request's content is wrong

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, exc.code, str(exc))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _registry_unreachable(_: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("registry unreachable: %s", " ".join(str(exc.orig or exc).split())[:300])
        return error_response(503, "registry_unavailable", "the registry database cannot be reached; nothing was "
                              "changed, try again shortly", headers={"Retry-After": "5"})

    @app.exception_handler(IntegrityFailure)
    async def _integrity(_: Request, exc: IntegrityFailure) -> JSONResponse:
        log.error("artifact integrity failure: %s", exc)
        return error_response(409, "integrity_failure", str(exc))


class UnhandledErrors:
    """The last net under the routes: an exception no handler above claimed is logged with its traceback and
    answered 500 with the JSON error body, and the connection stays open. (Starlette's own net answers plain
    text and re-raises, and uvicorn then closes a keep-alive connection.) Input errors never get here: they
    are mapped to 4xx above; this is for our own bugs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # part of a response is out: nothing sound can follow it on this connection
                raise
            await error_response(500, "internal_error", "the service failed to answer this request; the error "
                                 "is logged")(scope, receive, send)
