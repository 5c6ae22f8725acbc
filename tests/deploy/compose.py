"""docker-compose.yml as Compose itself resolves it (Debian's `docker-compose config`, no engine needed),
with the values of .env.example and stand-in passwords for the two it requires."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

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
