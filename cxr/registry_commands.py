"""Registry commands: `cxr db upgrade|downgrade|current`."""

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
