"""A registry filled by a real training run, and the API running in a real uvicorn process against it.

Built once per session: `fit` trains simple_cnn on the shipped PneumoniaMNIST for one short epoch and
`publish_checkpoint` registers it as `pneumonia@production` (the default model); every registered
architecture is also published as `zoo-<name>@production` with seeded initial weights and four labels, for
the Grad-CAM tests. The server reads the same SQLite file and artifact folder as the tests, so a test can
move an alias or change a stored file and watch the running server react.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml.config import TrainConfig
from ml.models import list_models
from ml.training.loop import fit
from registry.records import ModelVersionRecord
from tests.app.live_server import Registry, Server, start_server, stop_server, zoo_checkpoint

# Limits of the test server, small enough for the input corpus to cross each one cheaply.
SERVER_LIMITS = {
    "max_upload_bytes": 3 * 2**20,
    "max_request_bytes": 6 * 2**20,
    "max_image_pixels": 16_000_000,
    "max_files_per_request": 4,
}


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry.create(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.db.dispose()


@pytest.fixture(scope="session")
def trained_checkpoint(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """simple_cnn after one short epoch on real PneumoniaMNIST (with its thresholds and test metrics)."""
    config = TrainConfig.parse(
        {
            "model": "simple_cnn",
            "dataset": "pneumoniamnist",
            "data_root": str(data_dir / "pneumoniamnist"),
            "params": {
                "epochs": 1,
                "batch_size": 32,
                "max_train_samples": 1024,
                "max_eval_samples": 256,
                "lr": 2e-3,
            },
        }
    )
    return fit(config, tmp_path_factory.mktemp("run")).model_path


@pytest.fixture(scope="session")
def published(
    registry: Registry, trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ModelVersionRecord]:
    """`pneumonia` (trained) and `zoo-<architecture>` (initial weights), each with a production alias."""
    folder = tmp_path_factory.mktemp("zoo")
    versions = {"pneumonia": registry.publish(trained_checkpoint, "pneumonia")}
    for name in list_models():
        versions[f"zoo-{name}"] = registry.publish(zoo_checkpoint(name, folder), f"zoo-{name}")
    return versions


@pytest.fixture(scope="session")
def server(
    registry: Registry, published: dict[str, ModelVersionRecord], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The API in a uvicorn subprocess; aliases re-read every 0.3 s so tests see moves quickly."""
    running = start_server(
        registry,
        tmp_path_factory.mktemp("server") / "server.log",
        alias_refresh_seconds=0.3,
        model_cache_size=4,
        inference_workers=2,
        runtime_candidates="[]",  # eager throughout; tests/app/test_batching_server.py covers the choice
        **SERVER_LIMITS,
    )
    yield running
    stop_server(running)
    assert "Application shutdown complete" in running.log_tail(), running.log_tail()
    assert "Traceback" not in running.log_path.read_text(), running.log_tail(20000)


@pytest.fixture(scope="session")
def samples_dir(data_dir: Path) -> Path:
    return data_dir / "samples"


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c
