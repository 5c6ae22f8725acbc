"""A real deployment to attack: the API under uvicorn and a `cxr worker` process on a PostgreSQL registry
of this session's own (PostgreSQL refuses text SQLite takes, so what reaches it is tested where it fails),
the embedded SQLite broker, and two data roots: the repository's `data/` and a generated one.

Outside every root lies `outside/` with files whose first lines must never appear in an answer. Keys: an
admin key, a train key, and no key at all (the stranger every open GET route serves).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.migrate import upgrade
from tests.app.api.support import make_key
from tests.app.live_server import ZOO_LABELS, Registry, Server, start_server, stop_server, zoo_checkpoint
from tests.integration.services import postgres_database, session_tag
from tests.integration.stack import Child, start_worker
from tests.security.budget import Meter, budget_server

SECRET_LINE = "TOP-SECRET-FIRST-LINE,never,to,be,echoed"


@dataclass
class Deployment:
    url: str
    tmp: Path
    root: Path  # the generated data root
    repo_data: Path  # the repository's data/, the other root
    outside: Path  # outside every root
    artifacts: Path
    admin_key: str
    train_key: str
    server: Server
    worker: Child

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def write_tiny_npz(path: Path, n: int = 24, seed: int = 0) -> None:
    """A MedMNIST-layout file: 28 px images and 4 label columns (the zoo model's labels)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", n), ("val", n // 2), ("test", n // 2)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 2, (count, len(ZOO_LABELS)), dtype=np.uint8)
        labels[:2] = [[0] * len(ZOO_LABELS), [1] * len(ZOO_LABELS)]  # every label has both values
        arrays[f"{split}_labels"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def _data_root(tmp: Path) -> tuple[Path, Path]:
    root, outside = tmp / "root", tmp / "outside"
    write_tiny_npz(root / "tiny" / "tiny.npz")
    outside.mkdir()
    (outside / "secret.csv").write_text(f"{SECRET_LINE}\nsecond,line\n")
    write_tiny_npz(outside / "secret.npz", seed=1)
    (root / "escape").symlink_to(outside)  # a link inside a root pointing out of it
    (root / "loop").symlink_to(root / "loop")  # a link pointing at itself
    return root, outside


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("security")
    root, outside = _data_root(tmp)
    with postgres_database("cxr_security") as db_url:
        upgrade(db_url)
        registry = Registry(url=db_url, db=Database(db_url), store=LocalArtifactStore(tmp / "artifacts"))
        registry.publish(zoo_checkpoint("simple_cnn", tmp), "zoo")
        registry.db.dispose()
        admin_key, train_key = make_key(db_url, "sec-admin", "admin"), make_key(db_url, "sec-trainer", "train")
        settings = {"data_roots": json.dumps([str(data_dir), str(root)]),
                    "broker_url": f"sqla+sqlite:///{tmp / 'broker.db'}", "queue_namespace": f"sec{session_tag()}"}
        env = {f"CXR_{k.upper()}": v for k, v in settings.items()}
        env |= {"CXR_DATABASE_URL": db_url, "CXR_ARTIFACT_ROOT": str(registry.store.root)}
        worker = start_worker(env, tmp / "worker.log")
        server = start_server(registry, tmp / "api.log", default_model="zoo", runtime_candidates="[]", **settings)
        try:
            worker.wait_for_output(" ready.", 180)
            yield Deployment(url=server.url, tmp=tmp, root=root, repo_data=data_dir, outside=outside,
                             artifacts=registry.store.root, admin_key=admin_key, train_key=train_key, server=server,
                             worker=worker)
        finally:
            stop_server(server)
            worker.stop(signal.SIGTERM, timeout=30)


@pytest.fixture
def stranger(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client() as c:
        yield c


@pytest.fixture
def trainer(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client(deployment.train_key) as c:
        yield c


@pytest.fixture
def admin(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client(deployment.admin_key) as c:
        yield c


@pytest.fixture(scope="session")
def tiny(deployment: Deployment) -> str:
    """A registered dataset with the zoo model's labels: jobs on it run in seconds."""
    with deployment.client(deployment.train_key) as trainer:
        r = trainer.post("/datasets", json={"name": "tiny", "kind": "medmnist", "path": "tiny/tiny.npz",
                                            "options": {"labels": ZOO_LABELS}})
    assert r.status_code in (201, 409), r.text
    return "tiny"


# -- the decoder-bomb tests' server (tests/security/budget.py) ------------------------------------------


@pytest.fixture(scope="session")
def security_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with budget_server(tmp_path_factory.mktemp("budget")) as server:
        yield server


@pytest.fixture(scope="session")
def security_client(security_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=security_server.url, timeout=120) as client:
        yield client


@pytest.fixture()
def meter(security_server: Server) -> Meter:
    return Meter(security_server.process.pid)
