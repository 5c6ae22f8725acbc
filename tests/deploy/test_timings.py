"""The shutdown timings agree across the API's settings, docker-compose.yml, the HAProxy configuration and
the Kubernetes manifests, so that taking a replica or a worker away fails nothing:

- the proxy notices a draining replica (its checks, at their slowest) before the drain ends;
- compose and Kubernetes wait for the drain and the API's shutdown grace before they kill an API container;
- the proxy waits for a response at least as long as the API lets a request in flight finish;
- Kubernetes' preStop hook is compose's drain (Kubernetes stops routing by endpoints, not by readiness);
- a worker gets as long to hand its job back in Kubernetes as in compose.
"""

from __future__ import annotations

import re

import pytest

from app.settings import AppSettings
from cxr.service_commands import api_argv
from tests.deploy.compose import resolved
from tests.deploy.k8s import OVERLAYS, build, by_key, pod_spec
from tests.deploy.proxy import HAPROXY_CFG

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: str) -> float:
    """A duration as HAProxy or Compose writes it: `250ms`, `2s`, `1m30s`, `45s`; a bare number is ms in
    HAProxy (`default_unit`)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)?", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * UNITS[u or "ms"] for n, u in parts)


def haproxy() -> dict[str, float]:
    """The check timings of the shipped configuration's `default-server` and `timeout` lines."""
    text = HAPROXY_CFG.read_text()
    (line,) = re.findall(r"^\s*default-server (.*)$", text, re.MULTILINE)
    words = line.split()
    out = {key: seconds(words[words.index(key) + 1]) for key in ("inter", "fastinter")}
    out.update({key: float(words[words.index(key) + 1]) for key in ("rise", "fall")})
    for name in ("check", "server", "connect"):
        (value,) = re.findall(rf"^\s*timeout {name} (\S+)$", text, re.MULTILINE)
        out[f"timeout {name}"] = seconds(value)
    return out


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    return resolved(tmp_path_factory.mktemp("compose"))["services"]


def _compose_api_setting(compose, name: str) -> float:
    value = compose["api"]["environment"][name]
    if value not in ("", None):
        return float(value)
    return float(AppSettings.model_fields[name[4:].lower()].default)


def test_the_proxy_notices_a_draining_replica_before_it_stops_accepting(compose):
    h = haproxy()
    drain = _compose_api_setting(compose, "CXR_DRAIN_SECONDS")
    # at the slowest: the check in flight when SIGTERM arrives times out, the next starts `inter` later, and
    # `fall` failed checks `fastinter` apart each take up to `timeout check`
    check, fall = h["timeout check"], h["fall"]
    noticed = check + h["inter"] + fall * check + (fall - 1) * h["fastinter"]
    assert noticed < drain, (noticed, drain)
    assert h["rise"] >= 2  # one lucky answer from a starting replica does not put it in rotation


def test_compose_and_the_proxy_wait_for_the_drain_and_the_requests_in_flight(compose):
    drain = _compose_api_setting(compose, "CXR_DRAIN_SECONDS")
    grace = _compose_api_setting(compose, "CXR_SHUTDOWN_GRACE_SECONDS")
    assert seconds(compose["api"]["stop_grace_period"]) >= drain + grace + 5
    assert haproxy()["timeout server"] >= grace
    # uvicorn is told the same grace
    argv = api_argv(AppSettings())
    assert argv[argv.index("--timeout-graceful-shutdown") + 1] == str(AppSettings().shutdown_grace_seconds)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kubernetes_drains_by_its_prestop_hook_within_the_grace_period(compose, overlay):
    objects = by_key(build(OVERLAYS[overlay]))
    api = pod_spec(objects[("Deployment", "cxr-api")])
    (container,) = api["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    config = objects[("ConfigMap", "cxr-api")]["data"]
    drain, grace = float(config["CXR_DRAIN_SECONDS"]), float(config["CXR_SHUTDOWN_GRACE_SECONDS"])
    assert pre_stop == _compose_api_setting(compose, "CXR_DRAIN_SECONDS") and drain == 0
    assert grace == _compose_api_setting(compose, "CXR_SHUTDOWN_GRACE_SECONDS")
    assert api["terminationGracePeriodSeconds"] >= pre_stop + drain + grace + 5


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_a_worker_gets_the_same_time_to_hand_its_job_back_everywhere(compose, overlay):
    worker = pod_spec(by_key(build(OVERLAYS[overlay]))[("Deployment", "cxr-worker")])
    for service in ("worker", "worker-cpu"):
        assert worker["terminationGracePeriodSeconds"] == seconds(compose[service]["stop_grace_period"])
    assert worker["terminationGracePeriodSeconds"] >= 60
