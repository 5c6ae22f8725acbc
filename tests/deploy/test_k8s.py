"""deploy/k8s: every object of both overlays valid against the Kubernetes schemas (kubernetes-validate,
offline, strict), checkov's Kubernetes checks passing (skips only with a reason), the objects agreeing with
each other and with the code (probes on the health routes, selectors, settings each process reads), and each
container's command run here as a process with the environment Kubernetes would give it, against real
PostgreSQL and a password-protected Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from pydantic import ValidationError

from app.settings import AppSettings, BootstrapSettings
from registry.settings import RegistrySettings
from tests.deploy.compose import redis_server
from tests.deploy.k8s import (
    K8S,
    OVERLAYS,
    build,
    by_key,
    container_env,
    containers,
    map_paths,
    pod_spec,
    secret_example,
    without,
)
from tests.integration.services import postgres_database
from tests.integration.stack import (
    ADMIN_KEY,
    QUICK_PARAMS,
    REPO_ROOT,
    Child,
    finished,
    free_port,
    wait_until_ready,
    watch_job,
)
from worker.settings import WorkerSettings

# The oldest Kubernetes release still supported upstream when this was written, and the newest schemas
# kubernetes-validate ships
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
# What a container's command runs, and the settings class that process reads
PROCESSES = {("cxr", "api"): AppSettings, ("cxr", "worker"): WorkerSettings, ("cxr", "db"): RegistrySettings,
             ("sh", "-c"): BootstrapSettings}
NOT_SETTINGS = {"MPLCONFIGDIR"}  # read by matplotlib: its cache, on the writable /tmp
# checkov checks skipped, and where: each skip carries its reason in the object's annotations
ALLOWED_SKIPS = {"CKV_K8S_43": {"cxr-api", "cxr-worker", "cxr-migrate"},
                 "CKV_K8S_35": {"cxr-api", "cxr-worker", "cxr-migrate"},
                 "CKV_K8S_8": {"cxr-worker"}, "CKV_K8S_9": {"cxr-worker"}}
SAMPLE = REPO_ROOT / "data" / "samples" / "person1951_bacteria_4882.jpeg"


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request) -> dict[tuple[str, str], Any]:
    return by_key(build(OVERLAYS[request.param]))


def _settings_class(container: dict[str, Any]) -> type[RegistrySettings]:
    return PROCESSES[tuple(container["command"][:2])]


def test_every_object_is_valid_against_the_kubernetes_schemas(overlay):
    for version in KUBERNETES_VERSIONS:
        for (kind, name), obj in overlay.items():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{kind}/{name} is not valid Kubernetes {version}: {exc.message} at "
                            f"{'.'.join(map(str, exc.path))}")


def test_both_overlays_hold_the_whole_service(overlay):
    kinds = {}
    for kind, name in overlay:
        kinds.setdefault(kind, set()).add(name)
    assert kinds["Deployment"] == {"cxr-api", "cxr-worker"} and kinds["Job"] == {"cxr-migrate"}
    assert kinds["HorizontalPodAutoscaler"] == kinds["PodDisruptionBudget"] == kinds["Service"] == {"cxr-api"}
    assert kinds["ConfigMap"] == {"cxr-registry", "cxr-api", "cxr-worker"}
    assert "Secret" not in kinds  # created by the operator from secrets.example.env, never committed
    namespaces = {o["metadata"].get("namespace") for (kind, _), o in overlay.items() if kind != "Namespace"}
    assert namespaces == {"cxr"}


def test_checkov_finds_nothing_and_every_skip_is_explained():
    binary = shutil.which("checkov", path=str(REPO_ROOT / ".venv-tools" / "bin")) or shutil.which("checkov")
    if binary is None:
        pytest.fail("checkov not installed (make test installs it in .venv-tools)")
    done = subprocess.run([binary, "--directory", str(K8S), "--framework", "kubernetes", "--skip-download",
                           "--output", "json", "--compact"], capture_output=True, text=True,
                          timeout=600, check=False)
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["parsing_errors"] == 0, failed
    assert summary["passed"] >= 300 and summary["resource_count"] >= 15, summary  # it did look at everything
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == set(ALLOWED_SKIPS)
    for check in skipped:
        name = check["resource"].rsplit(".", 1)[-1]
        assert name in ALLOWED_SKIPS.get(check["check_id"], set()), f"{check['check_id']} {check['resource']}"
        assert len(check["check_result"]["suppress_comment"]) > 20, check


def test_the_api_is_probed_on_its_health_routes_and_served_on_its_port(overlay):
    api = overlay[("Deployment", "cxr-api")]
    (container,) = pod_spec(api)["containers"]
    (port,) = container["ports"]
    config = overlay[("ConfigMap", "cxr-api")]["data"]
    assert port == {"name": "http", "containerPort": int(config["CXR_PORT"])}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    service = overlay[("Service", "cxr-api")]["spec"]
    assert service["ports"][0]["targetPort"] == "http"
    (rule,) = overlay[("NetworkPolicy", "cxr-api-ingress")]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]
    assert api["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == config["CXR_PORT"]


def test_autoscaler_budget_service_and_policies_select_the_api_pods(overlay):
    api = overlay[("Deployment", "cxr-api")]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"]["matchLabels"] == labels

    def selects(selector: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    hpa = overlay[("HorizontalPodAutoscaler", "cxr-api")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cxr-api"}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = overlay[("PodDisruptionBudget", "cxr-api")]["spec"]
    assert selects(pdb["selector"]["matchLabels"]) and pdb["maxUnavailable"] < hpa["minReplicas"]
    assert selects(overlay[("Service", "cxr-api")]["spec"]["selector"])
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    worker_labels = overlay[("Deployment", "cxr-worker")]["spec"]["template"]["metadata"]["labels"]
    assert not pdb["selector"]["matchLabels"].items() <= worker_labels.items()
    # every pod of the service falls under the default-deny policy
    deny = overlay[("NetworkPolicy", "cxr-deny-ingress")]["spec"]
    assert "ingress" not in deny and deny["policyTypes"] == ["Ingress"]
    for (kind, name), obj in overlay.items():
        if kind in ("Deployment", "Job"):
            assert deny["podSelector"]["matchLabels"].items() <= obj["spec"]["template"]["metadata"][
                "labels"].items(), name


def test_the_gpu_worker_asks_for_a_gpu_and_the_cpu_worker_differs_in_nothing_else():
    gpu = by_key(build(OVERLAYS["gpu"]))[("Deployment", "cxr-worker")]
    cpu = by_key(build(OVERLAYS["cpu"]))[("Deployment", "cxr-worker")]
    (gpu_container,) = pod_spec(gpu)["containers"]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu_container["image"].startswith("cxr-gpu-worker:")
    assert pod_spec(gpu)["tolerations"][0]["key"] == "nvidia.com/gpu"
    spec = ("spec", "template", "spec")
    resources = (*spec, "containers", 0, "resources")
    gpu_rest = without(gpu, (*spec, "tolerations"), (*resources, "limits", "nvidia.com/gpu"),
                       (*resources, "requests", "nvidia.com/gpu"))
    for obj in (gpu_rest, cpu):
        for container in containers(obj):
            container["image"] = container["image"].split(":")[0].replace("cxr-gpu-worker", "IMAGE").replace(
                "cxr-api", "IMAGE")
    assert gpu_rest == cpu


def test_containers_get_only_their_settings_with_valid_values_and_secrets_from_the_secret(overlay,
                                                                                        monkeypatch):
    secret = secret_example()
    assert set(secret) == {"CXR_DATABASE_URL", "CXR_BROKER_URL", "CXR_BOOTSTRAP_ADMIN_KEY"}
    for (kind, name), obj in overlay.items():
        if kind == "ConfigMap":
            assert not any("@" in v or "PASSWORD" in k for k, v in obj["data"].items()), name
        for container in containers(obj):
            settings = _settings_class(container)
            env = container_env(overlay, container, secret=secret, pod_name=f"{name}-0")
            expected = {f"CXR_{field.upper()}" for field in settings.model_fields}
            unread = {k for k in env if k.startswith("CXR_")} - expected
            assert unread == set(), f"{name}/{container['name']} is given settings it does not read: {unread}"
            assert set(env) - expected <= NOT_SETTINGS, f"{name}/{container['name']}: {set(env) - expected}"
            refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e
                    and "secretKeyRef" in e["valueFrom"]]
            assert all(r["name"] == "cxr-secrets" and r["key"] in secret for r in refs), refs
            for key in [k for k in os.environ if k.startswith("CXR_")]:
                monkeypatch.delenv(key)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            try:
                settings()
            except ValidationError as exc:
                pytest.fail(f"{name}/{container['name']}: invalid settings: {exc}")


# --- the containers' commands as processes --------------------------------------------------------


class Pod:
    """A workload's containers run here: volumes as folders (a claim's folder shared between pods, an
    emptyDir per pod), the image's /app as this checkout, each container's environment as Kubernetes gives
    it."""

    def __init__(self, objects: dict[tuple[str, str], Any], workload: dict[str, Any], folder: Path,
                 secret: dict[str, str], port: int | None = None) -> None:
        self.objects, self.workload, self.folder = objects, workload, folder
        self.secret, self.port = secret, port
        self.name = f"{workload['metadata']['name']}-0"
        self.spec = pod_spec(workload)

    def _volume_folder(self, volume_name: str) -> Path:
        volume = next(v for v in self.spec["volumes"] if v["name"] == volume_name)
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        path = self.folder / (f"claim-{claim}" if claim else f"{self.name}-{volume_name}")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        env = container_env(self.objects, container, secret=self.secret, pod_name=self.name)
        mounts = {m["mountPath"]: str(self._volume_folder(m["name"]))
                  for m in container.get("volumeMounts", []) if m["mountPath"] != "/dev/shm"}
        env = map_paths(env, {**mounts, "/app": str(REPO_ROOT)})
        if "CXR_PORT" in env:
            assert self.port is not None
            env["CXR_PORT"], env["CXR_HOST"] = str(self.port), "127.0.0.1"
        # the image's PATH and PYTHONPATH: `cxr` from the image's Python, /app its checkout
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        env["PYTHONPATH"], env["PYTHONUNBUFFERED"] = str(REPO_ROOT), "1"
        return env

    def start(self, container: dict[str, Any]) -> Child:
        return Child(f"{self.name}/{container['name']}", container["command"], self.env(container),
                     self.folder / f"{self.name}-{container['name']}.log")

    def init_container(self) -> dict[str, Any]:
        (init,) = self.spec["initContainers"]
        return init

    def container(self) -> dict[str, Any]:
        (main,) = self.spec["containers"]
        return main


@pytest.mark.integration
@pytest.mark.slow
def test_each_containers_command_runs_here_as_kubernetes_would_run_it(tmp_path):
    objects = by_key(build(OVERLAYS["cpu"]))
    redis_password = "redis-secret-for-k8s-tests"
    redis_port = free_port()
    redis_proc = redis_server(redis_password, redis_port, tmp_path)
    children: list[Child] = []
    try:
        with postgres_database("cxr_k8s") as database_url:
            secret = {"CXR_DATABASE_URL": database_url,
                      "CXR_BROKER_URL": f"redis://:{redis_password}@127.0.0.1:{redis_port}/0",
                      "CXR_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
            api = Pod(objects, objects[("Deployment", "cxr-api")], tmp_path, secret, port=free_port())
            worker = Pod(objects, objects[("Deployment", "cxr-worker")], tmp_path, secret)
            migrate = Pod(objects, objects[("Job", "cxr-migrate")], tmp_path, secret)

            # the init containers wait while the schema is not there yet
            waiting = [api.start(api.init_container()), worker.start(worker.init_container())]
            children += waiting
            for child in waiting:
                child.wait_for_output("waiting for", 120)
                assert child.proc.poll() is None

            job = migrate.container()
            done = subprocess.run(job["command"], cwd=REPO_ROOT, env=migrate.env(job), capture_output=True,
                                  text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "schema at" in done.stdout and "pneumonia" in done.stdout
            for child in waiting:
                assert child.proc.wait(timeout=120) == 0, child.output()

            server = api.start(api.container())
            work = worker.start(worker.container())
            children += [server, work]
            main = api.container()
            probe = main["readinessProbe"]["httpGet"]
            with httpx.Client(base_url=f"http://127.0.0.1:{api.port}", timeout=60,
                              headers={"X-API-Key": ADMIN_KEY}) as client:
                wait_until_ready(client, 180, server)  # /health/ready, the readiness probe's path
                assert probe["path"] == "/health/ready"
                for name in ("livenessProbe", "startupProbe"):
                    assert client.get(main[name]["httpGet"]["path"]).status_code == 200
                r = client.post("/predict", files={"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")})
                assert r.status_code == 200, r.text
                assert f'replica="{api.name}"' in client.get("/metrics").text  # the pod's name
                work.wait_for_output(" ready.", 180)
                r = client.post("/training-jobs", json={"model": "simple_cnn", "dataset": "pneumoniamnist",
                                                        "params": {**QUICK_PARAMS, "epochs": 1}})
                assert r.status_code == 202, r.text
                job_done, _ = watch_job(client, r.headers["location"], finished, timeout=300)
                assert job_done["status"] == "succeeded", job_done["error"]

            # SIGTERM after the preStop hook: both stop within what is left of their grace period
            pre_stop = main["lifecycle"]["preStop"]["exec"]["command"]
            assert shutil.which(pre_stop[0]), pre_stop
            for pod, child in ((api, server), (worker, work)):
                hook = float(pre_stop[1]) if pod is api else 0.0
                left = pod.spec["terminationGracePeriodSeconds"] - hook
                child.proc.send_signal(signal.SIGTERM)
                child.proc.wait(timeout=left)
    finally:
        for child in children:
            child.stop(signal.SIGKILL, timeout=10)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
