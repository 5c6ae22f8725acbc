"""Registry commands: `cxr db upgrade|downgrade|current|wait` and `cxr keys create|list|revoke`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="registry database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_sub.add_parser("upgrade", help="migrate the registry to the newest schema (or --revision)")
    p.add_argument("--revision", default="head")
    p.add_argument("--url", help="database URL (default: CXR_DATABASE_URL or the embedded SQLite file)")
    p.set_defaults(func=cmd_upgrade)
    p = db_sub.add_parser("downgrade", help="migrate the registry down to --revision (default: empty)")
    p.add_argument("--revision", default="base")
    p.add_argument("--url")
    p.set_defaults(func=cmd_downgrade)
    p = db_sub.add_parser("current", help="print the registry's schema revision and the newest one")
    p.add_argument("--url")
    p.set_defaults(func=cmd_current)
    p = db_sub.add_parser("wait", help="wait until the registry answers and is at the newest schema (a "
                                       "container's init step while the migration runs elsewhere)")
    p.add_argument("--url")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up (default 600)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between two looks (default 2)")
    p.set_defaults(func=cmd_wait)
    register_keys(sub)


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url
    from registry.settings import RegistrySettings

    return RegistrySettings().database_url


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from registry.migrate import revision_of, upgrade

    url = _url(args)
    upgrade(url, args.revision)
    print(f"{_redact(url)}: schema at {revision_of(url)}")
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    from registry.migrate import downgrade, revision_of

    url = _url(args)
    downgrade(url, args.revision)
    print(f"{_redact(url)}: schema at {revision_of(url) or 'base (empty)'}")
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    from registry.migrate import head_revision, revision_of

    url = _url(args)
    current, head = revision_of(url), head_revision(url)
    print(f"{_redact(url)}: schema at {current or 'base (empty)'}; newest {head}"
          + ("" if current == head else "  -> run `cxr db upgrade`"))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from registry.migrate import head_revision, revision_of

    url = _url(args)
    head = head_revision(url)
    deadline = time.monotonic() + args.timeout
    said = ""
    while True:
        try:
            current = revision_of(url)
            state = f"schema at {current or 'base (empty)'}; waiting for {head} (`cxr db upgrade`)"
        except SQLAlchemyError as exc:
            current, state = None, f"unreachable ({type(exc).__name__}); waiting"
        if current == head:
            print(f"{_redact(url)}: schema at {head}")
            return 0
        if state != said:
            print(f"{_redact(url)}: {state}", flush=True)
            said = state
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {_redact(url)} not at schema {head} after {args.timeout:g} s ({state})")
        time.sleep(args.interval)


# --- keys ------------------------------------------------------------------------------------------


def register_keys(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys: create (printed once), list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys_sub.add_parser("create", help="create a key and print it (only its hash is stored)")
    p.add_argument("--name", required=True, help="who holds it; the audit log names it")
    p.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                   help="predict, train or admin (admin implies all); repeat or separate by commas")
    p.add_argument("--url")
    p.set_defaults(func=cmd_keys_create)
    p = keys_sub.add_parser("list", help="list the keys: name, prefix, scopes, created, revoked")
    p.add_argument("--url")
    p.set_defaults(func=cmd_keys_list)
    p = keys_sub.add_parser("revoke", help="revoke a key by name (or prefix)")
    p.add_argument("name")
    p.add_argument("--url")
    p.set_defaults(func=cmd_keys_revoke)


CLI_ACTOR = "cli"  # what the audit log names for changes made with `cxr keys`


def _session(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    from registry.db import Database

    @contextmanager
    def scope():  # type: ignore[no-untyped-def]
        db = Database(_url(args))
        try:
            with db.session() as session:
                yield session
        finally:
            db.dispose()

    return scope()


def cmd_keys_create(args: argparse.Namespace) -> int:
    from registry.audit import record_event
    from registry.keys import create_key

    scopes = [s.strip() for item in args.scope for s in item.split(",") if s.strip()]
    with _session(args) as session:
        record, key = create_key(session, name=args.name, scopes=scopes)
        record_event(session, actor=CLI_ACTOR, action="key.created", target=f"/keys/{record.name}",
                     details={"scopes": record.scopes, "prefix": record.prefix})
    print(f"API key '{record.name}' ({', '.join(record.scopes)}); shown once, keep it:")
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from registry.keys import list_keys

    with _session(args) as session:
        keys = list_keys(session)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.name:<24} {k.prefix}...  {','.join(k.scopes):<20} created {k.created_at:%Y-%m-%d %H:%M}  {state}")
    if not keys:
        print("no API keys (cxr keys create --name NAME --scope SCOPE)")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from registry.audit import record_event
    from registry.keys import revoke_key

    with _session(args) as session:
        record = revoke_key(session, name=args.name)
        record_event(session, actor=CLI_ACTOR, action="key.revoked", target=f"/keys/{record.name}",
                     details={"prefix": record.prefix})
    print(f"API key '{record.name}' ({record.prefix}...) revoked")
    return 0
