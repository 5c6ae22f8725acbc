"""The shipped HAProxy configuration (deploy/haproxy/haproxy.cfg) on this machine: the same file with only
what Docker provides replaced, each by one line that must be there as shipped (the listening addresses, and
fixed servers instead of the template Docker's DNS fills). tests/deploy runs it in front of API replicas;
bench.capacity measures through it."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import httpx

from bench.common import REPO_ROOT

HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SERVER_TEMPLATE = "    server-template api 1-16 api:8000 resolvers docker init-addr none"


def haproxy_binary() -> str | None:
    """Debian's haproxy (make test installs it), or None."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def local_config(*, port: int, stats_port: int, replicas: dict[str, int]) -> str:
    """The shipped configuration with this machine's ports and `replicas` (server name -> API port)."""
    text = HAPROXY_CFG.read_text()
    servers = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in replicas.items())
    for shipped, local in (("    bind :8000\n", f"    bind 127.0.0.1:{port}\n"),
                           ("    bind :8404\n", f"    bind 127.0.0.1:{stats_port}\n"),
                           (SERVER_TEMPLATE + "\n", servers + "\n")):
        if text.count(shipped) != 1:
            raise ValueError(f"{HAPROXY_CFG} no longer has the line {shipped!r}")
        text = text.replace(shipped, local)
    return text


def backend_stats(stats_port: int) -> dict[str, dict[str, str]]:
    """The `api` backend's rows of HAProxy's statistics (its servers by name, and 'BACKEND')."""
    text = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=10).text
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: row for row in rows if row["pxname"] == "api"}
