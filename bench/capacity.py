"""Capacity: requests/s per API replica and per core on this machine, what the HAProxy in front costs, the
time a training job takes per worker, and what a given load needs (docs/capacity.md).

    python -m bench.capacity [--quick] [--model pneumonia|densenet121|all] [--rps 100] [--jobs 4]

Each model is served by `cxr api` from a temporary registry and loaded with /predict of the 1024 px PNG
(data/samples/nih_cxr_1024.png, the benchmarks' standard upload) by closed-loop clients (keep-alive
connections, the body built once) in four set-ups, measured in alternating rounds so that each sees the same
changes in what else runs on this shared machine:

  1 core              one replica confined to core 0 (one inference worker, one torch thread); the clients on
                      core 1, so the replica's core does nothing else: the figure per core
  1 core + proxy      the same replica behind the shipped HAProxy configuration; HAProxy and the clients on
                      core 1: what the proxy adds to a request
  2 cores             one replica on both cores (two inference workers, the default); the clients share the
                      cores: a replica the size of the Kubernetes manifests' (cpu 2), a lower bound
  2 x 1 core + proxy  two replicas, one per core, behind HAProxy; HAProxy and the clients share the cores

Training: two epochs of the default model's recipe in-process on one core and one torch thread, scaled to
the recipe's epochs: how long one worker takes for one job. A GPU is not measured (none here).

Raw numbers go to bench/results/capacity.json.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench import server as srv
from bench.common import REPO_ROOT, machine, summarize, write_result
from bench.proxy import backend_stats, haproxy_binary, local_config
from bench.serving import KeepAliveClient

PNG = REPO_ROOT / "data" / "samples" / "nih_cxr_1024.png"
RECIPE = REPO_ROOT / "recipes" / "pneumonia-pneumoniamnist.toml"
CLIENTS = 8
HEADROOM = 0.7  # the HorizontalPodAutoscaler's CPU target: a replica is planned at 70 % of what it can do
MIN_REPLICAS = 2  # deploy/k8s: minReplicas, so one is always up during a restart
REPLICA_CORES = 2  # deploy/k8s: the API's cpu request and limit
SETUPS = ("1 core", "1 core + proxy", "2 cores", "2 x 1 core + proxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) of process `pid`, or of its thread `thread`, from /proc."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, fields 14 and 15 of stat(5)


@contextmanager
def cpu_meter(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds used while the block runs: by each of `pids` (name -> pid), by the main (event loop)
    thread of each (name + ' loop'), and by this process (the clients, 'clients')."""
    def read() -> dict[str, float]:
        out = {"clients": time.process_time()}
        for name, pid in pids.items():
            out[name], out[f"{name} loop"] = cpu_seconds(pid), cpu_seconds(pid, pid)
        return out

    used: dict[str, float] = {}
    before = read()
    yield used
    after = read()
    used.update({name: after[name] - before[name] for name in before})


@contextmanager
def haproxy(folder: Path, replicas: dict[str, str], cpus: set[int] | None) -> Iterator[tuple[str, int]]:
    """The shipped HAProxy configuration in front of `replicas` (name -> URL); yields its URL and pid once
    every replica is UP in its health checks."""
    binary = haproxy_binary()
    if binary is None:
        raise SystemExit("error: haproxy is not installed (apt-get install haproxy; make test does)")
    port, stats_port = _free_port(), _free_port()
    ports = {name: int(url.rsplit(":", 1)[1]) for name, url in replicas.items()}
    config = folder / f"haproxy-{port}.cfg"
    config.write_text(local_config(port=port, stats_port=stats_port, replicas=ports))
    proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                rows = backend_stats(stats_port)
                if all(rows.get(name, {}).get("status") == "UP" for name in replicas):
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("haproxy did not put every replica UP within 60 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def load(url: str, png: bytes, seconds: float, clients: int = CLIENTS,
         cpus: set[int] | None = None) -> dict[str, Any]:
    """`clients` threads posting /predict back to back for `seconds` (on `cpus` if given)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client_loop() -> None:
        client = KeepAliveClient(url, png)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    client.post("/predict")
                except (OSError, RuntimeError) as exc:
                    with lock:
                        errors.append(str(exc)[:200])
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
        finally:
            client.close()

    previous = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)  # threads inherit the affinity of the thread that starts them
    try:
        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
    finally:
        os.sched_setaffinity(0, previous)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "seconds": elapsed, "latencies": latencies}


def proxy_added_ms(direct: str, proxied: str, png: bytes, n: int) -> dict[str, Any]:
    """One client, requests to the replica directly and through the proxy in turn: what the proxy adds to
    a request's latency when nothing queues (medians of `n` each; the clients' core runs the proxy too)."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    clients = {"direct": KeepAliveClient(direct, png), "proxy": KeepAliveClient(proxied, png)}
    try:
        for client in clients.values():
            client.timed("/predict", 3)
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(n):
            for name, client in clients.items():
                samples[name] += client.timed("/predict", 1)
    finally:
        for client in clients.values():
            client.close()
        os.sched_setaffinity(0, previous)
    direct_ms, proxy_ms = summarize(samples["direct"]), summarize(samples["proxy"])
    return {"direct_ms": direct_ms, "proxy_ms": proxy_ms,
            "added_median_ms": proxy_ms["median"] - direct_ms["median"]}


def _checkpoint(model: str, folder: Path) -> Path:
    if model == "pneumonia":
        return REPO_ROOT / "models" / "pneumonia" / "model.pt"
    from bench.models import BenchModel, densenet121_224
    from bench.serving import _checkpoint as save

    return save(BenchModel("densenet121 @224 (random)", densenet121_224), folder)


def bench_model(model: str, *, seconds: float, rounds: int) -> dict[str, Any]:
    png = PNG.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cxr-capacity-") as tmp:
        root = Path(tmp)
        registry = srv.make_registry(root, {model: _checkpoint(model, root)})
        common = {"default_model": model, "alias_refresh_seconds": 3600}
        one_core = {"inference_workers": 1, "inference_threads": 1}
        servers = {"core0": srv.start(root, registry, cpus={0}, **common, **one_core)}
        try:
            servers["core1"] = srv.start(root, registry, cpus={1}, **common, **one_core)
            servers["both"] = srv.start(root, registry, **common)
            runtimes = {name: (srv.wait_runtime_chosen(s.url, model) or {}).get("runtime", "eager")
                        for name, s in servers.items()}
            both = {"a": servers["core0"].url, "b": servers["core1"].url}
            with haproxy(root, {"a": servers["core0"].url}, cpus={1}) as (one_proxied, proxy1), \
                    haproxy(root, both, cpus=None) as (two, proxy2):
                pid = {name: s.process.pid for name, s in servers.items()}
                setups = {  # url, client cores, the processes that serve it
                    "1 core": (servers["core0"].url, {1}, {"api": pid["core0"]}),
                    "1 core + proxy": (one_proxied, {1}, {"api": pid["core0"], "proxy": proxy1}),
                    "2 cores": (servers["both"].url, None, {"api": pid["both"]}),
                    "2 x 1 core + proxy": (two, None,
                                           {"api": pid["core0"], "api2": pid["core1"], "proxy": proxy2}),
                }
                for url, cpus, _ in setups.values():  # warm-up: every path once loaded
                    load(url, png, 1.0, cpus=cpus)
                sequential = proxy_added_ms(servers["core0"].url, one_proxied, png,
                                            n=20 if seconds < 10 else 80)
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
                for _ in range(rounds):
                    for name, (url, cpus, pids) in setups.items():
                        with cpu_meter(pids) as used:
                            run = load(url, png, seconds / rounds, cpus=cpus)
                        runs[name].append({**run, "cpu": used})
        finally:
            for s in servers.values():
                s.stop()
    out: dict[str, Any] = {"model": model, "runtimes": runtimes, "setups": {}}
    for name, parts in runs.items():
        latencies = [ms for p in parts for ms in p["latencies"]]
        elapsed = sum(p["seconds"] for p in parts)
        n = max(1, len(latencies))
        cpu = {k: sum(p["cpu"][k] for p in parts) for k in parts[0]["cpu"]}
        api = sum(v for k, v in cpu.items() if k.startswith("api") and not k.endswith("loop"))
        out["setups"][name] = {
            "requests": len(latencies), "errors": sum(p["errors"] for p in parts),
            "error_examples": [e for p in parts for e in p["error_examples"]][:3],
            "seconds": elapsed, "req_per_s": len(latencies) / elapsed,
            "latency_ms": summarize(latencies) if latencies else None,
            # CPU per request: the replicas, their event-loop threads, the proxy, the clients
            "cpu_ms_per_request": {"api": 1000 * api / n, "api loop": 1000 * cpu["api loop"] / n,
                                   "proxy": 1000 * cpu.get("proxy", 0.0) / n,
                                   "clients": 1000 * cpu["clients"] / n},
            "api_cores_busy": api / elapsed}
    s = out["setups"]
    one = s["1 core"]
    # Per core: what one core does when the replica has it to itself, from the CPU time a request costs the
    # replica (the cores are shared with other tenants, so req/s alone would measure them too; api_cores_busy
    # says how much of its core the replica got)
    out["cpu_ms_per_request"] = one["cpu_ms_per_request"]["api"]
    out["per_core_req_per_s"] = 1000 / out["cpu_ms_per_request"]
    # a replica of REPLICA_CORES cores: that many times the per-core figure, unless its one event loop (the
    # part of a request that runs there holds the GIL) is busy before that
    out["loop_ceiling_req_per_s"] = 1000 / one["cpu_ms_per_request"]["api loop"]
    out["per_replica_req_per_s"] = min(REPLICA_CORES * out["per_core_req_per_s"],
                                       out["loop_ceiling_req_per_s"])
    out["proxy_cpu_ms_per_request"] = s["1 core + proxy"]["cpu_ms_per_request"]["proxy"]
    out["proxy_added_ms"] = sequential
    return out


def training_job_minutes(epochs_measured: int = 2) -> dict[str, Any]:
    """The default model's recipe, `epochs_measured` epochs on one core and one torch thread, scaled to
    the recipe's epochs."""
    import torch

    from ml.config import TrainConfig, load_recipe
    from ml.training.loop import fit

    raw = load_recipe(RECIPE)
    raw.pop("description", None)
    raw["data_root"] = str(REPO_ROOT / raw["data_root"])
    epochs = raw["params"]["epochs"]
    raw["params"] = {**raw["params"], "epochs": epochs_measured}
    previous_affinity, previous_threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="cxr-capacity-train-") as tmp:
            started = time.perf_counter()
            fit(TrainConfig.parse(raw), tmp, resume=False)
            seconds = time.perf_counter() - started
    finally:
        os.sched_setaffinity(0, previous_affinity)
        torch.set_num_threads(previous_threads)
    return {"recipe": str(RECIPE.relative_to(REPO_ROOT)), "epochs_measured": epochs_measured,
            "seconds_measured": seconds, "recipe_epochs": epochs,
            "job_minutes_one_core": seconds / epochs_measured * epochs / 60}


def replicas_for(rps: float, per_replica: float) -> int:
    """Replicas of the manifests' size for `rps`, each planned at HEADROOM of what it served here."""
    return max(MIN_REPLICAS, math.ceil(rps / (per_replica * HEADROOM)))


def print_result(result: dict[str, Any], rps: float, jobs: int) -> None:
    header = (f"  {'set-up':<20} {'req/s':>7} {'median ms':>10} {'p99 ms':>8} {'errors':>7}"
              f"   CPU ms/request: {'api':>5} {'loop':>5} {'proxy':>5} {'clients':>7}   api cores busy")
    for r in result["models"]:
        runtimes = ", ".join(sorted(set(r["runtimes"].values())))
        print(f"\n{r['model']} (runtime {runtimes}), /predict of the 1024 px PNG, {CLIENTS} closed-loop "
              "clients")
        print(header)
        for name in SETUPS:
            s = r["setups"][name]
            lat = s["latency_ms"] or {"median": float("nan"), "p99": float("nan")}
            c = s["cpu_ms_per_request"]
            print(f"  {name:<20} {s['req_per_s']:>7.1f} {lat['median']:>10.1f} {lat['p99']:>8.1f} "
                  f"{s['errors']:>7}   {'':>16}{c['api']:>5.1f} {c['api loop']:>5.1f} {c['proxy']:>5.1f} "
                  f"{c['clients']:>7.1f}   {s['api_cores_busy']:.2f}")
        one = r["setups"]["1 core"]
        print(f"  per core: {r['cpu_ms_per_request']:.1f} ms of CPU per request, so "
              f"{r['per_core_req_per_s']:.0f} req/s on a core of its own (here it got "
              f"{one['api_cores_busy']:.2f} of one: the cores are shared)")
        print(f"  the event loop ({one['cpu_ms_per_request']['api loop']:.1f} ms a request) tops out near "
              f"{r['loop_ceiling_req_per_s']:.0f} req/s per process")
        print(f"  per replica of {REPLICA_CORES} cores (the Kubernetes manifests'): "
              f"{r['per_replica_req_per_s']:.0f} req/s")
        p = r["proxy_added_ms"]
        print(f"  HAProxy: {r['proxy_cpu_ms_per_request']:.2f} ms of CPU per request; one client, in turn: "
              f"{p['direct_ms']['median']:.1f} ms direct, {p['proxy_ms']['median']:.1f} ms through it "
              f"({p['added_median_ms']:+.1f} ms)")
        need = replicas_for(rps, r["per_replica_req_per_s"])
        print(f"  {rps:g} req/s of {r['model']}: {need} replicas of {REPLICA_CORES} cores "
              f"({need * REPLICA_CORES} cores), each planned at {100 * HEADROOM:.0f}% of "
              f"{r['per_replica_req_per_s']:.1f} req/s")
    t = result.get("training")
    if t:
        minutes = t["job_minutes_one_core"]
        print(f"\ntraining: {t['recipe']} ({t['recipe_epochs']} epochs) takes {minutes:.1f} min on one "
              f"core of this machine ({t['epochs_measured']} epochs measured: {t['seconds_measured']:.0f} "
              f"s); a worker runs one job at a time, so {jobs} jobs at once need {jobs} workers, and {jobs} "
              f"jobs queued for one worker finish after {jobs * minutes:.0f} min")
    print("per GPU: not measured (no GPU on this machine)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 s of load per set-up instead of 40 s, no training")
    parser.add_argument("--model", choices=["pneumonia", "densenet121", "all"], default="all")
    parser.add_argument("--rps", type=float, default=100.0, help="the load to size for (requests/s)")
    parser.add_argument("--jobs", type=int, default=4, help="training jobs to size for")
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("error: needs two cores (one for the replica, one for the clients)")
    models = ["pneumonia", "densenet121"] if args.model == "all" else [args.model]
    seconds, rounds = (5.0, 1) if args.quick else (40.0, 4)
    print(f"machine: {machine()}", flush=True)
    result: dict[str, Any] = {"clients": CLIENTS, "seconds_per_setup": seconds, "rounds": rounds,
                              "upload": PNG.name, "models": []}
    for model in models:
        started = time.perf_counter()
        result["models"].append(bench_model(model, seconds=seconds, rounds=rounds))
        print(f"({model}: {time.perf_counter() - started:.0f} s)", flush=True)
    if not args.quick:
        result["training"] = training_job_minutes()
    result["sizing"] = {"rps": args.rps, "jobs": args.jobs, "headroom": HEADROOM,
                        "replicas": {r["model"]: replicas_for(args.rps, r["per_replica_req_per_s"])
                                     for r in result["models"]}}
    print_result(result, args.rps, args.jobs)
    print(f"\nraw: {write_result('capacity', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
