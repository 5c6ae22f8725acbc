"""The audit log: who (an API key's name; `cli` and `bootstrap` for local commands) did what to what, and when,
written in the same transaction as the change it describes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.records import AuditRecord, to_record
from registry.tables import AuditEvent


def record_event(session: Session, *, actor: str, action: str, target: str,
                 details: dict[str, Any] | None = None) -> None:
    """Add an audit event; it commits (or rolls back) with the change it describes."""
    session.add(AuditEvent(actor=actor, action=action, target=target, details=details or {}))
    session.flush()


def list_events(session: Session, *, action: str | None = None, actor: str | None = None, limit: int = 100,
                offset: int = 0) -> tuple[list[AuditRecord], int]:
    """A page of events, newest first, and how many match."""
    stmt = select(AuditEvent)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit).offset(offset))
    return [to_record(r, AuditRecord) for r in rows], total
