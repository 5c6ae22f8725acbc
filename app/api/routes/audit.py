"""`GET /audit` (admin): who did what to what, and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import AUTH_ERRORS, AdminKey
from app.api.deps import SessionDep
from app.api.errors import error_responses
from app.schemas.access import AuditEvent, AuditList, AuditPage
from registry.audit import list_events

router = APIRouter(tags=["access"])


@router.get("/audit", response_model=AuditList, responses={**AUTH_ERRORS, **error_responses(422)})
def audit(session: SessionDep, caller: AdminKey, page: Annotated[AuditPage, Query()]) -> AuditList:
    """List audit events, newest first."""
    events, total = list_events(session, action=page.action, actor=page.actor, limit=page.limit,
                                offset=page.offset)
    return AuditList(items=[AuditEvent.of(e) for e in events], total=total, limit=page.limit, offset=page.offset)
