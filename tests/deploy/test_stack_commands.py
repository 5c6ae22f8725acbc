"""The containers' exact commands, run here as processes: `migrate` (`cxr db upgrade && cxr bootstrap`),
the API (`cxr api`) and a worker (`cxr worker`), each with the environment docker-compose gives it from
.env.example, against real PostgreSQL and a password-protected Redis started for this test.

Only what the compose network and volumes provide is mapped to this machine: the hosts `postgres` and
`redis` (and the PostgreSQL role and database, to this session's own), the image's /app (the checkout),
the artifact volume and the datasets mount (temporary folders), and the API's port (a free one).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.compose import local_env, redis_server, resolved
from tests.integration.services import postgres_database
from tests.integration.stack import QUICK_PARAMS, Child, finished, free_port, wait_until_ready, watch_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "samples" / "person1951_bacteria_4882.jpeg"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("deploy")
    (tmp / "datasets").mkdir()
    services = resolved(tmp)["services"]
    password = services["redis"]["environment"]["REDISCLI_AUTH"]
    redis_port, api_port = free_port(), free_port()
    redis_proc = redis_server(password, redis_port, tmp)
    children: list[Child] = []
    try:
        with postgres_database("cxr_deploy") as database_url:
            envs = {name: local_env(services[name]["environment"], database_url=database_url,
                                     redis_port=redis_port, api_port=api_port, tmp=tmp)
                    for name in ("migrate", "api", "worker")}
            migrate = subprocess.run(services["migrate"]["command"], cwd=REPO_ROOT, env=envs["migrate"],
                                     capture_output=True, text=True, timeout=300, check=False)
            assert migrate.returncode == 0, migrate.stdout + migrate.stderr
            api = Child("api", services["api"]["command"], envs["api"], tmp / "api.log")
            worker = Child("worker", services["worker"]["command"], envs["worker"], tmp / "worker.log")
            children += [api, worker]
            # .env.example leaves CXR_BOOTSTRAP_ADMIN_KEY empty: migrate generated one and printed it once
            admin_key = admin_key_printed_by(migrate.stdout)
            client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60,
                                  headers={"X-API-Key": admin_key})
            wait_until_ready(client, 180, api, worker)
            worker.wait_for_output(" ready.", 180)
            yield {"client": client, "migrate": migrate, "api": api, "worker": worker, "port": api_port,
                   "env": envs}
            client.close()
    finally:
        for child in children:
            child.stop(signal.SIGTERM, timeout=30)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def admin_key_printed_by(out: str) -> str:
    line = next(line for line in out.splitlines() if line.startswith("admin key") and "shown once" in line)
    return line.rsplit(" ", 1)[-1]


def test_migrate_upgraded_the_schema_and_imported_what_ships(stack):
    out = stack["migrate"].stdout
    assert "schema at" in out and "pneumoniamnist" in out and "pneumonia" in out


def test_the_deployment_asks_for_keys_and_migrate_printed_a_working_admin_key(stack):
    client = stack["client"]
    assert stack["env"]["api"]["CXR_OPEN_PREDICT"] == "false"
    anonymous = httpx.post(client.base_url.join("/predict"),
                           files={"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    assert client.get("/keys").json()["items"][0]["name"] == "bootstrap-admin"


def test_the_images_healthcheck_passes_against_the_running_api(stack):
    import json

    from tests.deploy.test_dockerfiles import DOCKERFILES, _all

    (health,) = _all(DOCKERFILES["api"], "HEALTHCHECK")
    argv = json.loads(health[health.index("CMD") + 3:].strip())
    argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{stack['port']}") for a in argv]
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    assert subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def test_it_serves_a_prediction(stack):
    r = stack["client"].post("/predict", files={"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "pneumonia" and set(body["probabilities"]) == {"Pneumonia"}


def test_it_runs_a_training_job_end_to_end(stack):
    client = stack["client"]
    r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumoniamnist",
                                            "params": {**QUICK_PARAMS, "epochs": 2}})
    assert r.status_code == 202, r.text
    job, _ = watch_job(client, r.headers["location"], finished, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    version = job["model_version"]
    listed = client.get(f"/models/{version['name']}/versions").json()["items"]
    assert version["version"] in [v["version"] for v in listed]
