"""API keys (the audit log that names them is `registry.audit`).

A key is `cxr_` + 8 hex characters + `_` + a random secret. Only its sha256 is stored, with its first 12
characters (the prefix) in clear to find the row and to name the key in listings; the plaintext is shown
once, when it is created. A key given from outside (the bootstrap admin key setting) follows the same rule:
its first 12 characters are its prefix. Revoked keys stay listed (the audit log names them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.errors import Conflict, NotFound
from registry.records import ApiKeyRecord, to_record
from registry.tables import ApiKey, utcnow

SCOPES = ("predict", "train", "admin")
PREFIX_LENGTH = 12
MIN_KEY_LENGTH = 24


def new_key() -> str:
    return f"cxr_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    return sorted(set(scopes), key=SCOPES.index)


def create_key(session: Session, *, name: str, scopes: list[str], key: str | None = None) -> tuple[ApiKeyRecord, str]:
    """A new key named `name` (a fresh secret unless `key` is given); returns its record and its plaintext."""
    scopes = _check_scopes(scopes)
    key = key or new_key()
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"an API key must be at least {MIN_KEY_LENGTH} characters")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict(f"an API key named '{name}' already exists")
    row = ApiKey(name=name, prefix=key[:PREFIX_LENGTH], key_sha256=key_digest(key), scopes=scopes)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # the same name or prefix, concurrently
        raise Conflict(f"an API key named '{name}' (or with prefix {key[:PREFIX_LENGTH]}) already exists") from None
    return to_record(row, ApiKeyRecord), key


def ensure_key(session: Session, *, name: str, key: str, scopes: list[str]) -> tuple[ApiKeyRecord, bool]:
    """Make `key` the active key named `name` (for keys given by a setting); returns it and whether anything
    changed. A different key under that name is replaced, so changing the setting rotates the key."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).one_or_none()
    if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_sha256, key_digest(key)) \
            and row.scopes == _check_scopes(scopes):
        return to_record(row, ApiKeyRecord), False
    if row is not None:
        session.delete(row)
        session.flush()
    record, _ = create_key(session, name=name, scopes=scopes, key=key)
    return record, True


def authenticate(session: Session, *, key: str) -> ApiKeyRecord | None:
    """The active key `key` is, or None (unknown, malformed or revoked)."""
    if len(key) < MIN_KEY_LENGTH:
        return None
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == key[:PREFIX_LENGTH])).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_sha256, key_digest(key)):
        return None
    return to_record(row, ApiKeyRecord)


def list_keys(session: Session) -> list[ApiKeyRecord]:
    return [to_record(r, ApiKeyRecord) for r in session.scalars(select(ApiKey).order_by(ApiKey.id))]


def active_admin_keys(session: Session) -> list[ApiKeyRecord]:
    return [k for k in list_keys(session) if k.revoked_at is None and "admin" in k.scopes]


def revoke_key(session: Session, *, name: str) -> ApiKeyRecord:
    """Revoke the key named `name` (or whose prefix is `name`); Conflict if it already is."""
    row = session.scalars(select(ApiKey).where((ApiKey.name == name) | (ApiKey.prefix == name))).first()
    if row is None:
        raise NotFound(f"no API key named '{name}'")
    if row.revoked_at is not None:
        raise Conflict(f"API key '{row.name}' is already revoked")
    row.revoked_at = utcnow()
    session.flush()
    return to_record(row, ApiKeyRecord)
