"""The shipped HAProxy configuration run here as a process (Debian's haproxy, the image's 2.6 branch) in
front of API processes on this machine (`bench.proxy.local_config`: only the listening addresses and the
servers differ from the shipped file; every timing, check, limit and header rule is the shipped one)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bench.proxy import HAPROXY_CFG, backend_stats, haproxy_binary, local_config
from tests.integration.stack import Child

__all__ = ["HAPROXY_CFG", "Proxy", "haproxy", "local_config"]


def haproxy() -> str:
    binary = haproxy_binary()
    if binary is None:
        pytest.fail("haproxy not installed (make test installs Debian's haproxy)")
    return binary


class Proxy:
    """haproxy in the foreground (`-db`) with the local configuration; its log lines in `log`."""

    def __init__(self, folder: Path, *, port: int, stats_port: int, replicas: dict[str, int],
                 env: dict[str, str] | None = None) -> None:
        self.port, self.stats_port = port, stats_port
        self.url = f"http://127.0.0.1:{port}"
        config = folder / "haproxy.cfg"
        config.write_text(local_config(port=port, stats_port=stats_port, replicas=replicas))
        self.child = Child("haproxy", [haproxy(), "-db", "-f", str(config)], env or {},
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
        return backend_stats(self.stats_port)

    def server_status(self, name: str) -> str:
        return self.stats()[name]["status"]

    def wait_status(self, name: str, status: str, timeout: float) -> None:
        """Wait until the proxy's health checks put server `name` in `status` (UP, DOWN)."""
        deadline = time.monotonic() + timeout
        while (now := self.server_status(name)) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy did not mark {name} {status} within {timeout} s (it is "
                                     f"{now})")
            time.sleep(0.1)

    def stop(self) -> None:
        self.child.stop()
