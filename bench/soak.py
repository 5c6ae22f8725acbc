"""Soak: many requests against a live API, watching its resident memory and counting errors.

    python -m bench.soak                     # 5,000 /predict and 1,000 /gradcam, a few clients at once
    python -m bench.soak --predict 500 --gradcam 100 --url http://127.0.0.1:8000 --pid 1234

Without `--url` it sets up what `make run` would, in a temporary folder: `cxr db upgrade`, `cxr bootstrap`
(the shipped `pneumonia` model), then `cxr api` (uvicorn, one process), and stops it at the end. The uploads
cycle through the bundled samples (JPEG and a 1024 px PNG). Resident memory (VmRSS of the API process, from
/proc) is read after a warm-up, every 500 requests and at the end; a leak shows as growth after warm-up.
Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO_ROOT, summarize, write_result

SAMPLES = sorted((REPO_ROOT / "data" / "samples").glob("*.*"))
MEDIA = {".png": "image/png", ".jpeg": "image/jpeg", ".jpg": "image/jpeg"}
WARM_UP = {"predict": 50, "gradcam": 10}
RSS_EVERY = 500


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_api(threads: int | None) -> Iterator[tuple[str, int]]:
    """`cxr db upgrade`, `cxr bootstrap` and `cxr api` on a temporary registry; yields (url, pid)."""
    with tempfile.TemporaryDirectory(prefix="cxr-soak-") as tmp:
        port = _free_port()
        env = {**os.environ, "CXR_DATABASE_URL": f"sqlite:///{tmp}/registry.db",
               "CXR_BROKER_URL": f"sqla+sqlite:///{tmp}/broker.db", "CXR_ARTIFACT_ROOT": f"{tmp}/artifacts",
               "CXR_HOST": "127.0.0.1", "CXR_PORT": str(port)}
        if threads:
            env["CXR_INFERENCE_THREADS"] = str(threads)
        for args in (["db", "upgrade"], ["bootstrap"]):
            subprocess.run([sys.executable, "-m", "cxr", *args], cwd=REPO_ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
        log = open(Path(tmp) / "api.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "cxr", "api"], cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start:\n{(Path(tmp) / 'api.log').read_text()[-3000:]}")
                time.sleep(0.3)
            yield url, proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()


def run(url: str, pid: int, n_predict: int, n_gradcam: int, concurrency: int) -> dict[str, Any]:
    uploads = [(p.name, p.read_bytes(), MEDIA[p.suffix.lower()]) for p in SAMPLES if p.suffix.lower() in MEDIA]
    cycle = itertools.cycle(uploads)
    plan = ["predict"] * n_predict + ["gradcam"] * n_gradcam
    # gradcam spread through the run, as a user of the web page would send them
    plan = [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i * 7919) % len(plan))]
    latencies: dict[str, list[float]] = {"predict": [], "gradcam": []}
    errors: dict[str, int] = {}
    rss: list[dict[str, float]] = []

    with httpx.Client(base_url=url, timeout=120,
                      limits=httpx.Limits(max_connections=concurrency)) as client:

        def call(kind: str, upload: tuple[str, bytes, str]) -> tuple[str, float, str | None]:
            start = time.perf_counter()
            try:
                r = client.post(f"/{kind}", files={"file": upload})
                problem = None if r.status_code == 200 else f"{kind} {r.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{kind} {type(exc).__name__}"
            return kind, (time.perf_counter() - start) * 1000, problem

        with ThreadPoolExecutor(concurrency) as pool:
            warm = [pool.submit(call, k, next(cycle)) for k, n in WARM_UP.items() for _ in range(n)]
            warm_errors = [f.result()[2] for f in warm if f.result()[2]]
            if warm_errors:
                raise RuntimeError(f"warm-up failed: {warm_errors[:5]}")
            rss.append({"requests": 0, "rss_mib": rss_mib(pid)})
            started = time.perf_counter()
            for offset in range(0, len(plan), RSS_EVERY):
                batch = plan[offset:offset + RSS_EVERY]
                for kind, ms, problem in pool.map(lambda k: call(k, next(cycle)), batch):
                    latencies[kind].append(ms)
                    if problem:
                        errors[problem] = errors.get(problem, 0) + 1
                rss.append({"requests": offset + len(batch), "rss_mib": rss_mib(pid)})
                print(f"  {offset + len(batch):>5}/{len(plan)} requests  rss {rss[-1]['rss_mib']:.0f} MiB  "
                      f"errors {sum(errors.values())}", flush=True)
            wall = time.perf_counter() - started
    return {
        "requests": {"predict": n_predict, "gradcam": n_gradcam}, "concurrency": concurrency,
        "wall_seconds": round(wall, 1), "requests_per_second": round(len(plan) / wall, 1),
        "errors": sum(errors.values()), "errors_by_kind": errors,
        "latency_ms": {k: summarize(v) for k, v in latencies.items() if v},
        "rss_mib": {"after_warm_up": rss[0]["rss_mib"], "end": rss[-1]["rss_mib"],
                    "max": max(r["rss_mib"] for r in rss), "growth": rss[-1]["rss_mib"] - rss[0]["rss_mib"],
                    "samples": rss},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--predict", type=int, default=5000, help="POST /predict requests")
    parser.add_argument("--gradcam", type=int, default=1000, help="POST /gradcam requests")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending at once")
    parser.add_argument("--url", help="a running API (default: start one, as `make run` would)")
    parser.add_argument("--pid", type=int, help="with --url: the API process whose memory to read")
    parser.add_argument("--threads", type=int, help="torch threads of the started API (CXR_INFERENCE_THREADS)")
    args = parser.parse_args(argv)
    if args.url and not args.pid:
        parser.error("--url needs --pid (the API process, for its resident memory)")
    print(f"soak: {args.predict} /predict + {args.gradcam} /gradcam, {args.concurrency} at once", flush=True)
    if args.url:
        result = run(args.url, args.pid, args.predict, args.gradcam, args.concurrency)
    else:
        with local_api(args.threads) as (url, pid):
            result = run(url, pid, args.predict, args.gradcam, args.concurrency)
    path = write_result("soak", result)
    mem = result["rss_mib"]
    print(f"resident memory: {mem['after_warm_up']:.0f} MiB after warm-up, {mem['end']:.0f} MiB at the end "
          f"(max {mem['max']:.0f}, growth {mem['growth']:+.0f} MiB)")
    lat = result["latency_ms"]
    print(f"errors: {result['errors']} {result['errors_by_kind'] or ''}; {result['requests_per_second']} req/s; "
          + "; ".join(f"{k} median {v['median']:.1f} ms p99 {v['p99']:.1f} ms" for k, v in lat.items()))
    print(f"wrote {path}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
