"""API keys and audit events as the API takes and shows them (never a key's hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.text import CallerText
from registry.records import MAX_INT, ApiKeyRecord, AuditRecord
from registry.versions import NAME_PATTERN

Scope = Literal["predict", "train", "admin"]

_EXAMPLE_KEY = {"name": "ci-trainer", "prefix": "cxr_1a2b3c4d", "scopes": ["train"],
                "created_at": "2026-01-05T10:00:00Z", "revoked_at": None}
_EXAMPLE_EVENT = {"id": 12, "at": "2026-01-05T10:00:00Z", "actor": "ci-trainer", "action": "job.submitted",
                  "target": "/training-jobs/7", "details": {"kind": "train", "model": "simple_cnn"}}


class KeyRequest(CallerText):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "ci-trainer", "scopes": ["train"]}]})

    name: str = Field(pattern=f"^{NAME_PATTERN}$", description="who holds it; the audit log names it")
    scopes: list[Scope] = Field(min_length=1, description="predict, train and/or admin (admin implies all)")


class ApiKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_KEY]})

    name: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKey:
        return cls(name=record.name, prefix=record.prefix, scopes=list(record.scopes),
                   created_at=record.created_at, revoked_at=record.revoked_at)


class CreatedKey(ApiKey):
    model_config = ConfigDict(json_schema_extra={"examples": [{**_EXAMPLE_KEY, "key": "cxr_1a2b3c4d_..."}]})

    key: str = Field(description="the key itself: shown this once, only its hash is kept")


class KeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_EXAMPLE_KEY]}]})

    items: list[ApiKey]


class AuditEvent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_EVENT]})

    id: int
    at: datetime
    actor: str = Field(description="the name of the key that did it")
    action: str = Field(description="job.submitted, job.cancelled, dataset.registered, alias.moved, key.created, "
                                    "key.revoked")
    target: str = Field(description="what it was done to, as the API's path")
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEvent:
        return cls.model_validate(record, from_attributes=True)


class AuditList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_EXAMPLE_EVENT], "total": 1, "limit": 100, "offset": 0}]})

    items: list[AuditEvent]
    total: int
    limit: int
    offset: int


class AuditPage(CallerText):
    """Query parameters of the audit log."""

    action: str | None = Field(None, max_length=50, description="only events of this action")
    actor: str | None = Field(None, max_length=100, description="only events by this key")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT)
