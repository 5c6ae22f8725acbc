"""Access control: API keys with scopes, sent as `X-API-Key: KEY` or `Authorization: Bearer KEY`.

Scopes: `predict` (POST /predict, /gradcam), `train` (training and evaluation jobs, datasets) and `admin`
(aliases, keys, the audit log), which implies the others. Every state-changing route names the scope it
needs with one of the aliases below; GET routes stay open. With the `open_predict` setting (the default,
so the local web page works) /predict and /gradcam need no key. No key, or an unknown or revoked one, is
401; a key without the scope is 403. The keys live hashed in the registry (`registry.keys`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SettingsDep, caller_key
from app.api.errors import ApiError, error_responses
from registry.records import ApiKeyRecord

api_key_header = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                              description="an API key (`cxr keys create`); the same as a Bearer token")
bearer = HTTPBearer(scheme_name="Bearer", auto_error=False, description="an API key as a Bearer token")

AUTH_ERRORS = error_responses(401, 403)
PREDICT_KEY_DOC = """ **401**/**403**: no API key, or one without scope `predict`, when the service runs with
`open_predict` off."""
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cxr"'}

HeaderKey = Annotated[str | None, Security(api_key_header)]
BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def presented_key(header: str | None, token: HTTPAuthorizationCredentials | None) -> str | None:
    if header:
        return header.strip()
    return token.credentials.strip() if token is not None else None


def check_scope(key: ApiKeyRecord | None, scope: str, presented: bool) -> ApiKeyRecord:
    """The key if it may use `scope`; 401 or 403 otherwise."""
    if key is None:
        message = ("the API key is unknown or revoked" if presented else
                   "this route needs an API key: send `X-API-Key: KEY` or `Authorization: Bearer KEY`")
        raise ApiError(401, "unauthorized", message, headers=_CHALLENGE)
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"API key '{key.name}' has scopes {', '.join(key.scopes)}; this route "
                                         f"needs '{scope}'")
    return key


def route_scope(dependant: Dependant) -> str | None:
    """The scope a route's dependencies require (`require(...)` or `predict_caller`), or None for an open one."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        needed = getattr(current.call, "cxr_scope", None)
        if needed is not None:
            return needed
        stack.extend(current.dependencies)
    return None


def require(scope: str) -> Callable[..., ApiKeyRecord]:
    """A dependency answering the caller's key, which must allow `scope` (`AccessGate` checked it before the
    body was read; the header parameters are here for the OpenAPI description)."""

    def caller(request: Request, header: HeaderKey, token: BearerKey) -> ApiKeyRecord:
        return check_scope(caller_key(request), scope, presented_key(header, token) is not None)

    caller.__name__ = f"require_{scope}"
    caller.cxr_scope = scope  # type: ignore[attr-defined]  # how AccessGate finds the routes that need a key
    return caller


async def predict_caller(request: Request, settings: SettingsDep, header: HeaderKey,
                         token: BearerKey) -> ApiKeyRecord | None:
    """/predict and /gradcam: open under `open_predict`, else scope predict."""
    if settings.open_predict:
        return None
    return check_scope(caller_key(request), "predict", presented_key(header, token) is not None)


predict_caller.cxr_scope = "predict"  # type: ignore[attr-defined]  # AccessGate: unless open_predict is set


TrainKey = Annotated[ApiKeyRecord, Depends(require("train"))]
AdminKey = Annotated[ApiKeyRecord, Depends(require("admin"))]
PredictKey = Annotated[ApiKeyRecord | None, Depends(predict_caller)]
