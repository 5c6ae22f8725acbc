"""docker-compose.yml as Compose itself resolves it (Debian's `docker-compose config`, no engine needed),
with the values of .env.example and stand-in passwords for the two it requires; and what running a service's
command here as a process needs (its environment mapped to this machine, a password-protected Redis)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from tests.integration.services import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
REQUIRED = {"POSTGRES_PASSWORD": "pg-secret-for-tests", "REDIS_PASSWORD": "redis-secret-for-tests"}


def env_example() -> dict[str, str]:
    """KEY=value lines of .env.example (comments skipped)."""
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def compose_config(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of a copy of the compose file with `env` as its .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose", "not installed (make test installs Debian's docker-compose)")
    shutil.copy(COMPOSE_FILE, folder / "docker-compose.yml")
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return subprocess.run([binary, "config"], cwd=folder, capture_output=True, text=True, timeout=60, check=False)


def resolved(folder: Path) -> dict[str, Any]:
    done = compose_config(folder, {**env_example(), **REQUIRED})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def referenced_variables() -> set[str]:
    """Every ${VAR...} the compose file interpolates."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))


def redis_server(password: str, port: int, folder: Path) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "not installed")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
                             "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    for _ in range(100):
        try:
            if client.ping():
                return proc
        except redis.RedisError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the test's redis-server did not start")


def local_env(env: dict[str, Any], *, database_url: str, redis_port: int, api_port: int,
              tmp: Path) -> dict[str, str]:
    """A service's compose environment with the network hosts, volumes and port mapped to this machine."""
    out = {k: "" if v is None else str(v) for k, v in env.items()}
    compose_db = make_url(out["CXR_DATABASE_URL"])
    assert compose_db.host == "postgres"
    local_db = make_url(database_url)
    local = compose_db.set(host="127.0.0.1", port=local_db.port, username=local_db.username, password=None,
                           database=local_db.database)
    out["CXR_DATABASE_URL"] = local.render_as_string(False)
    assert "@redis:6379/" in out["CXR_BROKER_URL"]
    out["CXR_BROKER_URL"] = out["CXR_BROKER_URL"].replace("@redis:6379/", f"@127.0.0.1:{redis_port}/")
    mounts = {"/var/lib/cxr": str(tmp / "volume"), "/datasets": str(tmp / "datasets"), "/app": str(REPO_ROOT)}
    for key, value in out.items():
        for inside, outside in mounts.items():
            value = value.replace(inside, outside)
        out[key] = value
    if "CXR_PORT" in out:
        out["CXR_PORT"] = str(api_port)
    # the image puts its virtual environment first on PATH, so `cxr` and `celery` resolve there; its /app is
    # this checkout (the virtual environment's `cxr` may be an editable install of another one)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    out["PYTHONPATH"] = str(REPO_ROOT)
    return out
