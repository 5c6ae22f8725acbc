"""API keys (admin): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.api.auth import AUTH_ERRORS, AdminKey
from app.api.deps import SessionDep
from app.api.errors import ApiError, error_responses
from app.schemas.access import ApiKey, CreatedKey, KeyList, KeyRequest
from registry.audit import record_event
from registry.keys import create_key, list_keys, revoke_key
from registry.versions import NAME_PATTERN

router = APIRouter(prefix="/keys", tags=["access"])

KeyName = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", description="the key's name (or prefix)",
                              examples=["ci-trainer"])]


CREATE_CONFLICT = ("conflict", "an API key named 'ci' already exists")
REVOKE_EXAMPLES = {404: ("not_found", "no API key named 'ci'"), 409: ("conflict", "API key 'ci' is already revoked")}


@router.post("", status_code=201, response_model=CreatedKey,
             responses={**AUTH_ERRORS, **error_responses(409, 422, examples={409: CREATE_CONFLICT})})
def create(body: KeyRequest, session: SessionDep, caller: AdminKey, response: Response) -> CreatedKey:
    """Create an API key; the answer holds the key, shown this once."""
    try:
        record, key = create_key(session, name=body.name, scopes=list(body.scopes))
    except ValueError as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    record_event(session, actor=caller.name, action="key.created", target=f"/keys/{record.name}",
                 details={"scopes": record.scopes, "prefix": record.prefix})
    response.headers["Location"] = f"/keys/{record.name}"
    return CreatedKey(**ApiKey.of(record).model_dump(), key=key)


@router.get("", response_model=KeyList, responses=AUTH_ERRORS)
def list_all(session: SessionDep, caller: AdminKey) -> KeyList:
    """List the API keys (names, prefixes, scopes; never the keys)."""
    return KeyList(items=[ApiKey.of(k) for k in list_keys(session)])


@router.delete("/{name}", response_model=ApiKey, responses={**AUTH_ERRORS, **error_responses(404, 409, 422, examples=REVOKE_EXAMPLES)})
def revoke(name: KeyName, session: SessionDep, caller: AdminKey) -> ApiKey:
    """Revoke an API key: it is refused from now on."""
    record = revoke_key(session, name=name)
    record_event(session, actor=caller.name, action="key.revoked", target=f"/keys/{record.name}",
                 details={"prefix": record.prefix})
    return ApiKey.of(record)
