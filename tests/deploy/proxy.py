"""The shipped HAProxy configuration run here as a process (Debian's haproxy, the image's 2.6 branch) in
front of API processes on this machine.

Only what Docker provides is changed, each by replacing one line that must be there as shipped: the
listening addresses (loopback ports instead of the container's :8000 and :8404) and the replicas (fixed
servers instead of the template filled from Docker's DNS). Every timing, check, limit and header rule is the
shipped one.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.stack import REPO_ROOT, Child

HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SERVER_TEMPLATE = "    server-template api 1-16 api:8000 resolvers docker init-addr none"


def haproxy_binary() -> str:
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        pytest.fail("haproxy not installed (make test installs Debian's haproxy)")
    return binary


def local_config(*, port: int, stats_port: int, replicas: dict[str, int]) -> str:
    """The shipped configuration with this machine's ports and `replicas` (server name -> API port)."""
    text = HAPROXY_CFG.read_text()
    servers = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in replicas.items())
    for shipped, local in (("    bind :8000\n", f"    bind 127.0.0.1:{port}\n"),
                           ("    bind :8404\n", f"    bind 127.0.0.1:{stats_port}\n"),
                           (SERVER_TEMPLATE + "\n", servers + "\n")):
        assert text.count(shipped) == 1, f"{HAPROXY_CFG} no longer has the line {shipped!r}"
        text = text.replace(shipped, local)
    return text


class Proxy:
    """haproxy in the foreground (`-db`) with the local configuration; its log lines in `log`."""

    def __init__(self, folder: Path, *, port: int, stats_port: int, replicas: dict[str, int],
                 env: dict[str, str] | None = None) -> None:
        self.port, self.stats_port = port, stats_port
        self.url = f"http://127.0.0.1:{port}"
        config = folder / "haproxy.cfg"
        config.write_text(local_config(port=port, stats_port=stats_port, replicas=replicas))
        self.child = Child("haproxy", [haproxy_binary(), "-db", "-f", str(config)], env or {},
                           folder / "haproxy.log")
        self._wait_listening(30)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.child.proc.poll() is not None:
                raise AssertionError(f"haproxy exited ({self.child.proc.returncode}):\n{self.child.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.stats_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"haproxy did not listen within {timeout} s:\n{self.child.output()}")
                time.sleep(0.1)

    def stats(self) -> dict[str, dict[str, str]]:
        """The backend's rows of HAProxy's statistics (its servers by name, and 'BACKEND')."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=10).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "api"}

    def server_status(self, name: str) -> str:
        return self.stats()[name]["status"]

    def wait_status(self, name: str, status: str, timeout: float) -> None:
        """Wait until the proxy's health checks put server `name` in `status` (UP, DOWN)."""
        deadline = time.monotonic() + timeout
        while (now := self.server_status(name)) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy did not mark {name} {status} within {timeout} s (it is {now})")
            time.sleep(0.1)

    def stop(self) -> None:
        self.child.stop()
