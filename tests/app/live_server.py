"""Helpers for tests that talk to a real API process: a registry on disk, checkpoints to put in it, and
uvicorn started and stopped around it. Plain functions, shared by `tests/app` and `tests/app/web`."""

from __future__ import annotations

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
import torch

from cxr.service_commands import HTTP_PROTOCOL
from ml.checkpoint import build_checkpoint, checkpoint_summary, load_checkpoint, save_checkpoint
from ml.models import create_model
from ml.transforms import resolve_data_config
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.migrate import upgrade
from registry.publish import publish_checkpoint
from registry.records import ModelVersionRecord
from tests.waiting import START_SECONDS

REPO_ROOT = Path(__file__).resolve().parents[2]
ZOO_LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Pneumonia"]
ZOO_MAX_INPUT = 64  # the 224 px architectures are served at 64 px in tests: same code, a fraction of the time
# cxr_cnn5's 25088-4096-2048 head alone is 480 MB; a narrower head keeps its tests quick (same entrypoint)
ZOO_MODEL_KWARGS = {"cxr_cnn5": {"hidden": [64, 32]}}


@dataclass
class Registry:
    url: str
    db: Database
    store: LocalArtifactStore

    @classmethod
    def create(cls, root: Path) -> Registry:
        url = f"sqlite:///{root / 'registry.db'}"
        upgrade(url)
        return cls(url=url, db=Database(url), store=LocalArtifactStore(root / "artifacts"))

    def publish(self, path: Path, name: str, *, alias: str | None = "production") -> ModelVersionRecord:
        """Register the checkpoint at `path` as the next version of `name` (stored under a fresh key)."""
        summary = checkpoint_summary(load_checkpoint(path))
        with self.db.session() as session:
            return publish_checkpoint(
                session,
                self.store,
                local_path=path,
                key=f"models/{name}/{uuid.uuid4().hex}.pt",
                name=name,
                summary=summary,
                alias=alias,
            )


def zoo_checkpoint(architecture: str, folder: Path, labels: list[str] = ZOO_LABELS) -> Path:
    """`architecture` with seeded initial weights and `labels` (multilabel), at most 64 px input."""
    torch.manual_seed(0)
    kwargs = ZOO_MODEL_KWARGS.get(architecture, {})
    model = create_model(architecture, num_classes=len(labels), **kwargs)
    data_config = resolve_data_config(model.cfg, input_size=min(model.cfg.input_size, ZOO_MAX_INPUT))
    ckpt = build_checkpoint(
        model,
        model_kwargs=kwargs,
        labels=labels,
        task="multilabel",
        data_config=data_config,
        thresholds=[0.5] * len(labels),
        metrics={"note": "untrained, for tests"},
    )
    return save_checkpoint(ckpt, folder / f"{architecture}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def start_server(registry: Registry, log_path: Path, **settings: Any) -> Server:
    """uvicorn serving `app.main:create_app` on `registry` (settings as `CXR_*`), ready when it returns."""
    port = free_port()
    env = {
        **os.environ,
        "CXR_DATABASE_URL": registry.url,
        "CXR_ARTIFACT_ROOT": str(registry.store.root),
        "CXR_HOST": "127.0.0.1",
        "CXR_PORT": str(port),
    }
    env.update({f"CXR_{key.upper()}": str(value) for key, value in settings.items()})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "app.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "info",
                "--no-access-log",
                "--http",
                HTTP_PROTOCOL,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health/live", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server did not start in time:\n{server.log_tail()}")


def stop_server(server: Server) -> int:
    """SIGTERM (uvicorn finishes what is in flight), then the exit status (uvicorn re-raises the signal,
    so a clean stop reads -15)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode
