"""docker-compose.yml is valid Compose, and what each service runs and reads matches the code: its
command parses as a real entry point, and its CXR_* environment is exactly the settings its process
reads (a setting the code reads that compose never sets fails, and so does the reverse)."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import AppSettings, BootstrapSettings
from cxr.cli import build_parser
from tests.deploy.compose import (
    COMPOSE_FILE,
    REQUIRED,
    compose_config,
    env_example,
    referenced_variables,
    resolved,
)
from tests.deploy.proxy import HAPROXY_CFG
from tests.integration.stack import REPO_ROOT
from worker.settings import WorkerSettings

# The settings class each service's process reads (migrate runs `cxr db upgrade`, which reads the registry's
# settings, and `cxr bootstrap`, which reads those and the bootstrap admin key).
SETTINGS = {"api": AppSettings, "api-gpu": AppSettings, "worker": WorkerSettings, "worker-cpu": WorkerSettings,
            "migrate": BootstrapSettings}
THIRD_PARTY = {"postgres", "redis", "proxy"}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return resolved(tmp_path_factory.mktemp("compose"))


def test_the_required_secrets_must_be_set(tmp_path):
    env = {**env_example(), **REQUIRED, "POSTGRES_PASSWORD": ""}
    done = compose_config(tmp_path, env)
    assert done.returncode != 0 and "set POSTGRES_PASSWORD in .env" in done.stderr


def test_every_service_is_there_with_its_profile(config):
    services = config["services"]
    assert set(services) == {"postgres", "redis", "migrate", "proxy", "api", "api-gpu", "worker", "worker-cpu",
                             "flower"}
    assert services["api-gpu"]["profiles"] == ["gpu-api"]
    assert services["worker"]["profiles"] == ["gpu"] and services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["flower"]["profiles"] == ["flower"]
    assert "profiles" not in services["api"] and "profiles" not in services["proxy"]


def test_the_api_scales_behind_the_proxys_one_published_port(config):
    services = config["services"]
    # no host port and no container name on the api: `--scale api=N` starts N of them
    assert "ports" not in services["api"] and "container_name" not in services["api"]
    assert [p["target"] for p in services["proxy"]["ports"]] == [8000]
    assert str(services["proxy"]["ports"][0]["published"]) == env_example()["API_PORT"]
    (mount,) = services["proxy"]["volumes"]  # "source:target:ro", the source made absolute
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/usr/local/etc/haproxy/haproxy.cfg", "ro")
    assert Path(source).relative_to(Path(source).parents[2]) == HAPROXY_CFG.relative_to(REPO_ROOT)
    # the proxy's body limit is the API's (empty in .env.example: the code's default on both)
    limit = services["proxy"]["environment"]["CXR_MAX_REQUEST_BYTES"]
    assert int(limit) == AppSettings.model_fields["max_request_bytes"].default
    assert env_example()["CXR_MAX_REQUEST_BYTES"] == ""


def _argvs(command: list[str]) -> list[list[str]]:
    """A service command as the argv lists it runs (`sh -c "a && b"` is two commands)."""
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


@pytest.mark.parametrize("service", ["migrate", "api", "api-gpu", "worker", "worker-cpu"])
def test_commands_are_real_cxr_entry_points(config, service):
    parser = build_parser()
    for argv in _argvs(config["services"][service]["command"]):
        assert argv[0] == "cxr", argv
        args = parser.parse_args(argv[1:])  # SystemExit on an unknown command or option
        assert callable(args.func)


def test_flower_is_installed_and_pointed_at_the_broker(config):
    command = config["services"]["flower"]["command"]
    assert command[0] == "celery" and "flower" in command
    assert command[command.index("--broker") + 1] == config["services"]["api"]["environment"]["CXR_BROKER_URL"]
    assert importlib.util.find_spec("flower") is not None


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_environment_is_exactly_the_settings_the_process_reads(config, service, monkeypatch):
    env = config["services"][service]["environment"]
    settings = SETTINGS[service]
    expected = {f"CXR_{name.upper()}" for name in settings.model_fields}
    set_here = {key for key in env if key.startswith("CXR_")}
    assert set_here - expected == set(), "compose sets settings the code does not read"
    assert expected - set_here == set(), "the code reads settings compose never sets"
    # and the values compose gives are valid settings, read the way the process reads them
    import os

    for key in [k for k in os.environ if k.startswith("CXR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, "" if value is None else str(value))
    try:
        settings()
    except ValidationError as exc:
        pytest.fail(f"{service}: compose gives invalid settings: {exc}")


def test_env_example_lists_every_variable_and_the_required_ones_are_marked():
    listed = set(env_example())
    referenced = referenced_variables()
    assert referenced - listed == set(), "compose reads variables .env.example does not list"
    compose_own = {"COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"}
    assert listed - referenced - compose_own == set(), ".env.example lists variables nothing reads"
    text = COMPOSE_FILE.read_text()
    for secret in REQUIRED:
        assert f"${{{secret}:?" in text and env_example()[secret] == "", secret


def test_dependencies_wait_for_health_and_migrations(config):
    s = config["services"]
    assert s["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("api", "worker", "worker-cpu"):
        deps = s[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
    assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert "ping" in s["redis"]["healthcheck"]["test"]


def test_workers_scale_and_reserve_a_gpu(config):
    worker = config["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("worker", "worker-cpu"):
        assert "container_name" not in config["services"][name] and "ports" not in config["services"][name]
        assert config["services"][name]["environment"]["CXR_WORKER_POOL"] == "solo"


def test_api_workers_and_migrate_share_the_artifact_volume(config):
    mounts = {name: {v.split(":")[0]: v.split(":")[1] for v in config["services"][name]["volumes"]}
              for name in ("api", "worker", "migrate")}
    for name, volumes in mounts.items():
        assert volumes.get("artifacts") == "/var/lib/cxr/artifacts", name
        assert config["services"][name]["environment"]["CXR_ARTIFACT_ROOT"] == "/var/lib/cxr/artifacts"
    assert "artifacts" in config["volumes"] and "pgdata" in config["volumes"]


def test_third_party_images_are_pinned(config):
    for name in THIRD_PARTY:
        image = config["services"][name]["image"]
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), image


def test_the_gpu_api_serves_on_cuda_in_the_proxys_rotation(config):
    api, gpu = config["services"]["api"], config["services"]["api-gpu"]
    assert gpu["environment"]["CXR_SERVE_DEVICE"] == "cuda" and api["environment"]["CXR_SERVE_DEVICE"] == ""
    # every other setting as the CPU api's, so both replicas behave alike behind the proxy
    assert {k: v for k, v in gpu["environment"].items() if k != "CXR_SERVE_DEVICE"} == \
        {k: v for k, v in api["environment"].items() if k != "CXR_SERVE_DEVICE"}
    assert gpu["command"] == api["command"] and "ports" not in gpu
    assert "api" in gpu["networks"]["default"]["aliases"]  # the proxy resolves `api`
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu-api"
