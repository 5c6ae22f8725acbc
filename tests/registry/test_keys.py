"""API keys and audit events on SQLite and PostgreSQL: stored hashed, found by prefix, revoked for good,
a configured key rotated by name, events paged newest first."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from registry.errors import Conflict, NotFound
from registry.audit import list_events, record_event
from registry.keys import authenticate, create_key, ensure_key, list_keys, revoke_key


def test_a_key_is_stored_hashed_and_authenticates_until_revoked(db):
    with db.session() as s:
        record, key = create_key(s, name="ci", scopes=["train", "predict"])
    assert record.scopes == ["predict", "train"] and key.startswith(record.prefix) and len(key) > 40
    with db.session() as s:
        assert key not in str(s.execute(text("SELECT * FROM api_keys")).all())
        found = authenticate(s, key=key)
        assert found.name == "ci" and found.allows("train") and not found.allows("admin")
        assert authenticate(s, key=key[:-1] + ("x" if key[-1] != "x" else "y")) is None  # same prefix, wrong key
        assert authenticate(s, key="short") is None
        with pytest.raises(Conflict):
            create_key(s, name="ci", scopes=["predict"])
        with pytest.raises(ValueError, match="scopes must be some of"):
            create_key(s, name="x", scopes=["root"])
    with db.session() as s:
        assert revoke_key(s, name=record.prefix).revoked_at is not None  # by prefix as well as by name
    with db.session() as s:
        assert authenticate(s, key=key) is None and not list_keys(s)[0].allows("predict")
        with pytest.raises(Conflict, match="already revoked"):
            revoke_key(s, name="ci")
        with pytest.raises(NotFound):
            revoke_key(s, name="nobody")


def test_admin_implies_every_scope_and_a_configured_key_rotates(db):
    first, second = "cxr_configured_" + "a" * 30, "cxr_configured_" + "b" * 30
    with db.session() as s:
        record, changed = ensure_key(s, name="boot", key=first, scopes=["admin"])
        assert changed and all(record.allows(scope) for scope in ("predict", "train", "admin"))
        assert ensure_key(s, name="boot", key=first, scopes=["admin"])[1] is False
        assert ensure_key(s, name="boot", key=second, scopes=["admin"])[1] is True
    with db.session() as s:
        assert authenticate(s, key=first) is None and authenticate(s, key=second).name == "boot"
        assert [k.name for k in list_keys(s)] == ["boot"]


def test_events_are_paged_newest_first_and_filtered(db):
    with db.session() as s:
        for i in range(5):
            record_event(s, actor="ci" if i % 2 else "admin", action="job.submitted", target=f"/training-jobs/{i}",
                         details={"i": i})
        record_event(s, actor="admin", action="alias.moved", target="/models/p/aliases/production")
    with db.session() as s:
        page, total = list_events(s, limit=2, offset=1)
        assert total == 6 and [e.target for e in page] == ["/training-jobs/4", "/training-jobs/3"]
        ci, total = list_events(s, actor="ci", action="job.submitted")
        assert total == 2 and {e.details["i"] for e in ci} == {1, 3} and all(e.at for e in ci)
