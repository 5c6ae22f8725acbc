"""Three API replicas behind the shipped HAProxy configuration, as processes: the compose `api` service's
command (`cxr api`) and environment, three times, on one PostgreSQL registry, behind Debian's haproxy.

An alias move reaches every replica by its next alias refresh; a rolling restart (SIGTERM each replica in
turn, the next only once the restarted one is ready and back in the proxy's rotation) under steady load
answers every request; the proxy passes request ids through and refuses what the API would refuse; each
replica's metrics name it.

Test-only settings on top of compose's: each replica's port and id, a 2 s alias refresh (compose: 5 s) so the
alias test is short, and no background runtime trials (they only compete for the two cores here).
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.compose import local_env, redis_server, resolved
from tests.deploy.proxy import Proxy
from tests.integration.services import postgres_database
from tests.integration.stack import ADMIN_KEY, REPO_ROOT, Child, free_port, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLICAS = ("api-1", "api-2", "api-3")
REFRESH_SECONDS = 2.0
SAMPLE = REPO_ROOT / "data" / "samples" / "person1951_bacteria_4882.jpeg"
HEADERS = {"X-API-Key": ADMIN_KEY}


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


def predict(client: httpx.Client, url: str = "/predict", **params: str) -> httpx.Response:
    return client.post(url, params=params, headers=HEADERS,
                       files={"file": (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg")})


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(poll)


class Cluster:
    """The replicas (restartable by name), their direct clients and the proxy in front of them."""

    def __init__(self, folder: Path, command: list[str], env: dict[str, str]) -> None:
        self.folder, self.command, self.env = folder, command, env
        self.ports = {name: free_port() for name in REPLICAS}
        self.children: dict[str, Child] = {}
        self.direct = {name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
                       for name, port in self.ports.items()}
        self.proxy: Proxy | None = None

    def replica_env(self, name: str) -> dict[str, str]:
        return {**self.env, "CXR_PORT": str(self.ports[name]), "CXR_REPLICA_ID": name,
                "CXR_ALIAS_REFRESH_SECONDS": str(REFRESH_SECONDS), "CXR_RUNTIME_CANDIDATES": "[]",
                "PYTHONUNBUFFERED": "1"}  # as in the image: log lines reach the file as they are written

    def start(self, name: str) -> Child:
        child = Child(name, self.command, self.replica_env(name), self.folder / f"{name}.log")
        self.children[name] = child
        return child

    def wait_ready(self, name: str, timeout: float = 180) -> None:
        wait_until_ready(self.direct[name], timeout, self.children[name])

    def metrics(self, name: str) -> str:
        return self.direct[name].get("/metrics").text

    def served(self, name: str, route: str = "/predict") -> float:
        """Requests this replica answered on `route` (any status), from its own metrics."""
        return sum(v for labels, v in metric_samples(self.metrics(name), "cxr_http_requests_total")
                   if labels["route"] == route)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for child in self.children.values():
            child.stop(signal.SIGKILL if child.proc.poll() is None else signal.SIGTERM, timeout=10)
        for client in self.direct.values():
            client.close()


def publish_second_version(database_url: str, artifact_root: str) -> int:
    """The shipped `pneumonia` checkpoint published again, without an alias: a version to move to."""
    from ml.checkpoint import checkpoint_summary, load_checkpoint
    from registry.artifacts import artifact_store
    from registry.db import Database
    from registry.publish import publish_checkpoint

    path = REPO_ROOT / "models" / "pneumonia" / "model.pt"
    db = Database(database_url)
    try:
        with db.session() as session:
            record = publish_checkpoint(session, artifact_store(artifact_root), local_path=path,
                                        key="tests/replicas/model.pt", name="pneumonia",
                                        summary=checkpoint_summary(load_checkpoint(path)))
            return record.version
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    (tmp / "datasets").mkdir()
    services = resolved(tmp)["services"]
    password = services["redis"]["environment"]["REDISCLI_AUTH"]
    redis_port = free_port()
    redis_proc = redis_server(password, redis_port, tmp)
    cluster: Cluster | None = None
    try:
        with postgres_database("cxr_replicas") as database_url:
            envs = {name: local_env(services[name]["environment"], database_url=database_url,
                                    redis_port=redis_port, api_port=0, tmp=tmp)
                    for name in ("migrate", "api")}
            envs["migrate"]["CXR_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY
            migrate = subprocess.run(services["migrate"]["command"], cwd=REPO_ROOT, env=envs["migrate"],
                                     capture_output=True, text=True, timeout=300, check=False)
            assert migrate.returncode == 0, migrate.stdout + migrate.stderr
            second = publish_second_version(database_url, envs["api"]["CXR_ARTIFACT_ROOT"])
            cluster = Cluster(tmp, services["api"]["command"], envs["api"])
            cluster.second_version = second  # type: ignore[attr-defined]
            for name in REPLICAS:
                cluster.start(name)
            for name in REPLICAS:
                cluster.wait_ready(name)
            proxy_env = {k: str(v) for k, v in services["proxy"]["environment"].items()}
            cluster.proxy = Proxy(tmp, port=free_port(), stats_port=free_port(), replicas=cluster.ports,
                                  env=proxy_env)
            for name in REPLICAS:
                cluster.proxy.wait_status(name, "UP", timeout=60)
            yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def test_an_alias_move_is_served_by_every_replica_by_its_next_refresh(cluster, capsys):
    assert cluster.proxy is not None
    second = cluster.second_version
    with httpx.Client(base_url=cluster.proxy.url, timeout=60) as through_proxy:
        for name in REPLICAS:
            assert predict(cluster.direct[name]).json()["model"]["version"] == 1, name
        moved = through_proxy.put("/models/pneumonia/aliases/production", json={"version": second},
                                  headers=HEADERS)
        assert moved.status_code == 200, moved.text
        moved_at = time.monotonic()
        try:
            # a refresh that began after the move has completed once a replica's count has gone up by two
            # from what it was after the move; by then it must serve the new version
            after_move = {name: metric_samples(cluster.metrics(name), "cxr_alias_refreshes_total")[0][1]
                          for name in REPLICAS}
            switched = {}
            for name in REPLICAS:
                wait_for(lambda n=name: metric_samples(cluster.metrics(n), "cxr_alias_refreshes_total")[0][1]
                         >= after_move[n] + 2, timeout=120, what=f"{name}: two alias refreshes")
                answer = predict(cluster.direct[name]).json()
                assert answer["model"]["version"] == second, (name, answer["model"])
                switched[name] = time.monotonic() - moved_at
            versions = {predict(through_proxy).json()["model"]["version"] for _ in range(9)}
            assert versions == {second}
        finally:
            through_proxy.put("/models/pneumonia/aliases/production", json={"version": 1}, headers=HEADERS)
    with capsys.disabled():
        print(f"\nalias move (refresh every {REFRESH_SECONDS:g} s) seen by "
              + ", ".join(f"{n} within {s:.1f} s" for n, s in switched.items()))


class Load:
    """A steady load: `clients` threads send /predict through the proxy back to back, each on its own
    keep-alive connection, until stopped. It must outlast whatever the test waits for, however slow the
    machine: a load that ended by a count or a clock of its own left the last replica of a slow rolling
    restart with nothing to serve. `seconds` is only a backstop for a test that hangs."""

    def __init__(self, url: str, clients: int = 3, seconds: float = 3600) -> None:
        self.url, self.deadline = url, time.monotonic() + seconds
        self.results: list[tuple[float, float, int | str]] = []  # (sent at, seconds, status or error)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                start = time.monotonic()
                try:
                    r = predict(client)
                    outcome: int | str = 200 if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.results.append((start, time.monotonic() - start, outcome))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=180)

    def answered_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for sent, _, _ in self.results if sent >= moment)

    def failures(self) -> list[tuple[float, float, int | str]]:
        return [r for r in self.results if r[2] != 200]


def test_a_rolling_restart_under_load_answers_every_request(cluster, capsys):
    proxy = cluster.proxy
    assert proxy is not None
    api_env = cluster.env
    drain = float(api_env["CXR_DRAIN_SECONDS"])
    assert drain > 0, "compose's api service must drain on SIGTERM"
    steps = []
    with Load(proxy.url) as load:
        wait_for(lambda: load.answered_since(0) >= 20, 120, "the load started")
        for name in REPLICAS:
            old = cluster.children[name]
            signalled = time.monotonic()
            old.proc.send_signal(signal.SIGTERM)
            proxy.wait_status(name, "DOWN", timeout=60)
            marked_down = time.monotonic() - signalled
            old.proc.wait(timeout=drain + 30 + 60)  # the drain, then at most the shutdown grace
            exited = time.monotonic()
            # the others carry the load while this one is gone
            wait_for(lambda t=exited: load.answered_since(t) >= 5, 120,
                     "requests answered while a replica is down")
            new = cluster.start(name)
            cluster.wait_ready(name)  # the restarted replica answers its readiness itself
            proxy.wait_status(name, "UP", timeout=60)  # and the proxy has it back in rotation
            served_before = cluster.served(name)
            wait_for(lambda n=name, b=served_before: cluster.served(n) > b, 120,
                     f"{name} serving through the proxy again")
            info = metric_samples(cluster.metrics(name), "cxr_replica_info")
            assert [labels for labels, _ in info] == [{"replica": name, "pid": str(new.pid)}]
            steps.append((name, marked_down, exited - signalled, time.monotonic() - signalled))
    failures = load.failures()
    latencies = sorted(seconds for _, seconds, _ in load.results)
    stats = proxy.stats()["BACKEND"]
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    with capsys.disabled():
        print(f"\nrolling restart of {len(REPLICAS)} replicas under load: {len(load.results)} requests, "
              f"{len(failures)} failed; latency median {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; proxy retries {stats['wretr']}, "
              f"redispatches {stats['wredis']}")
        for name, down, gone, back in steps:
            print(f"  {name}: marked down {down:.1f} s after SIGTERM (drain {drain:g} s), exited after "
                  f"{gone:.1f} s, serving again after {back:.1f} s")
    assert failures == [], failures[:10]
    assert len(load.results) >= 20 * len(REPLICAS)


def test_request_ids_pass_through_the_proxy_to_the_api_and_its_logs(cluster):
    assert cluster.proxy is not None
    mine = f"deploy-test-{uuid.uuid4().hex}"
    with httpx.Client(base_url=cluster.proxy.url, timeout=60) as client:
        echoed = client.get("/health/live", headers={"X-Request-ID": mine})
        made = client.get("/health/live")
        forged = client.get("/health/live", headers={"X-Request-ID": "two words\tand a tab"})
    assert echoed.headers["x-request-id"] == mine
    for response in (made, forged):  # the proxy made a UUID for each
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}",
                            response.headers["x-request-id"]), response.headers
    assert made.headers["x-request-id"] != forged.headers["x-request-id"]
    wait_for(lambda: any(f"request_id={mine}" in c.output() for c in cluster.children.values()), 30,
             "the API's access log line with the request id")
    wait_for(lambda: mine in cluster.proxy.child.output(), 30, "the proxy's log line with the request id")


def _declared_body(host: str, port: int, length: int) -> tuple[int, dict[str, Any]]:
    """A POST /predict that declares `length` bytes of body and sends none: the answer to the headers."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(length))
        conn.putheader("X-API-Key", ADMIN_KEY)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_proxy_refuses_a_body_over_the_apis_limit_as_the_api_does(cluster):
    assert cluster.proxy is not None
    from app.settings import AppSettings

    default = AppSettings.model_fields["max_request_bytes"].default
    limit = int(cluster.env.get("CXR_MAX_REQUEST_BYTES") or default)
    by_proxy = _declared_body("127.0.0.1", cluster.proxy.port, limit + 1)
    by_api = _declared_body("127.0.0.1", cluster.ports[REPLICAS[0]], limit + 1)
    assert by_proxy[0] == by_api[0] == 413
    assert by_proxy[1]["error"] == by_api[1]["error"] == "too_large"
    assert f"{limit}" in by_proxy[1]["message"]


def test_each_replicas_metrics_name_it(cluster):
    assert cluster.proxy is not None
    for name in REPLICAS:
        info = metric_samples(cluster.metrics(name), "cxr_replica_info")
        assert info == [({"replica": name, "pid": str(cluster.children[name].pid)}, 1.0)]
    before = {name: cluster.served(name) for name in REPLICAS}
    with httpx.Client(base_url=cluster.proxy.url, timeout=60) as client:
        for _ in range(12):
            assert predict(client).status_code == 200
        scraped = metric_samples(client.get("/metrics").text, "cxr_replica_info")
    assert len(scraped) == 1 and scraped[0][0]["replica"] in REPLICAS
    gained = {name: cluster.served(name) - before[name] for name in REPLICAS}
    assert sum(gained.values()) == 12, gained


def test_with_no_replica_ready_the_proxy_answers_503_as_json(tmp_path):
    proxy = Proxy(tmp_path, port=free_port(), stats_port=free_port(), replicas={"api-1": free_port()})
    try:
        proxy.wait_status("api-1", "DOWN", timeout=60)
        r = httpx.get(f"{proxy.url}/health/live", headers={"X-Request-ID": "no-replica-1"}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"] == "unavailable"
        assert r.headers["x-request-id"] == "no-replica-1"
    finally:
        proxy.stop()
