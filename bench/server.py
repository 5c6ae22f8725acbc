"""A real API process for the HTTP benchmarks: a temporary SQLite registry with the benchmark's models
published in it (the same `publish_checkpoint` path as `cxr bootstrap`), and `cxr api` started against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO_ROOT
from ml.checkpoint import checkpoint_summary, load_checkpoint
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.migrate import upgrade
from registry.publish import publish_checkpoint


def make_registry(root: Path, checkpoints: dict[str, Path]) -> str:
    """A migrated SQLite registry under `root` with each checkpoint as `name@production`; its URL."""
    url = f"sqlite:///{root / 'registry.db'}"
    upgrade(url)
    db, store = Database(url), LocalArtifactStore(root / "artifacts")
    for name, path in checkpoints.items():
        with db.session() as session:
            publish_checkpoint(session, store, local_path=path, key=f"models/{name}/{uuid.uuid4().hex}.pt",
                               name=name, summary=checkpoint_summary(load_checkpoint(path)), alias="production")
    db.dispose()
    return url


def make_registry_for(tree: Path, root: Path, checkpoints: dict[str, Path]) -> str:
    """`make_registry` by the code of `tree` (another revision's checkout), so the registry has that
    revision's schema: a server refuses a registry migrated past its own newest revision."""
    if tree.resolve() == REPO_ROOT.resolve():
        return make_registry(root, checkpoints)
    code = ("import json, sys; from pathlib import Path; from bench.server import make_registry; "
            "print(make_registry(Path(sys.argv[1]), {k: Path(v) for k, v in json.loads(sys.argv[2]).items()}))")
    paths = json.dumps({name: str(path) for name, path in checkpoints.items()})
    done = subprocess.run([sys.executable, "-c", code, str(root), paths], cwd=tree, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float  # perf_counter when the process was started

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(root: Path, registry_url: str, *, wait_ready: bool = True, tree: Path = REPO_ROOT,
          cpus: set[int] | None = None, env: dict[str, str] | None = None, **settings: Any) -> Server:
    """`python -m cxr api` on a free port with `settings` as CXR_* variables (and, with `cpus`, confined to
    those cores, as a container's CPU set would); returns once /health/live answers (and, with
    `wait_ready`, once the default model is loaded). `tree`: the source tree whose code it runs (another
    checkout, to compare revisions side by side); `env`: more variables for its environment."""
    port = _free_port()
    env = {**os.environ, "CXR_DATABASE_URL": registry_url, "CXR_ARTIFACT_ROOT": str(root / "artifacts"),
           "CXR_HOST": "127.0.0.1", "CXR_PORT": str(port), **(env or {})}
    env.update({f"CXR_{k.upper()}": str(v) for k, v in settings.items()})
    log_path = root / f"server-{port}.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "cxr", "api"], cwd=tree, env=env, stdout=log,
                                   stderr=subprocess.STDOUT,
                                   preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, started)
    deadline = time.monotonic() + 120
    path = "/health/ready" if wait_ready else "/health/live"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"server not ready in time:\n{log_path.read_text()[-3000:]}")


def wait_runtime_chosen(url: str, name: str, timeout: float = 300) -> dict[str, Any] | None:
    """The model's serving info from GET /models once its background runtime trial is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for model in httpx.get(url + "/models", timeout=30).json()["items"]:
            if model["name"] == name:
                serving = next((v["serving"] for v in model["versions"] if v["serving"]), None)
                if serving and serving["runtime_state"] != "choosing":
                    return serving
        time.sleep(0.5)
    return None
