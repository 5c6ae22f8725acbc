"""Benchmarks 2, 3, 4 and 7, through a real API process (`cxr api` on a temporary SQLite registry that holds
the model, published as `cxr bootstrap` publishes the shipped ones):

2. HTTP overhead: the 1024 px PNG through POST /predict by a sequential client, against decode + preprocess
   + forward in this process with the runtime the server chose, one sample of each in turn so that changes
   in the machine's load reach both alike (median, p99, ratio, difference). The client is one keep-alive
   `http.client` connection posting a body built once, so its own cost is small next to the server's.
3. Throughput under load: 16 concurrent clients for a fixed time, micro-batching on and off, the two servers
   loaded in alternating rounds (req/s, p50, p99).
4. Grad-CAM cost: POST /gradcam (the default overlay: JPEG, at most 1024 px) over POST /predict latency.
7. Start-up: from starting the process to the first successful /predict; resident memory after N /predict
   requests against right after warm-up.

    python -m bench serving [--quick]
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import torch

from bench import server as srv
from bench.common import REPO_ROOT, summarize
from bench.models import BenchModel
from ml.checkpoint import build_checkpoint, save_checkpoint
from ml.imaging import read_image
from ml.runtime import build_runtime

SAMPLE_PNG = REPO_ROOT / "data" / "samples" / "nih_cxr_1024.png"
CLIENTS = 16


def _checkpoint(entry: BenchModel, folder: Path) -> Path:
    loaded = entry.loaded
    ckpt = build_checkpoint(loaded.model, model_kwargs=loaded.meta.get("model_kwargs") or {}, labels=loaded.labels,
                            task=loaded.task.value, data_config=loaded.data_config,
                            thresholds=loaded.thresholds.tolist())
    return save_checkpoint(ckpt, folder / "model.pt")


def _files(png: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", ("nih_cxr_1024.png", png, "image/png"))]


class KeepAliveClient:
    """Sequential POSTs of one upload over one persistent HTTP/1.1 connection (`http.client`), reconnecting
    when the server has closed it. The multipart body is built once, so what a request costs here is the
    server's work and the socket, with as little of the client's as can be (httpx builds each body anew,
    ~0.2 ms for the 1024 px PNG, on the cores the server uses)."""

    def __init__(self, url: str, png: bytes, timeout: float = 120) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{SAMPLE_PNG.name}"\r\n'
                "Content-Type: image/png\r\n\r\n").encode()
        self.body = head + png + f"\r\n--{boundary}--\r\n".encode()
        self.headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(len(self.body))}
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, **params: str) -> bytes:
        """The response body of POST `path`; raises on a status other than 200."""
        target = f"{path}?{urlencode(params)}" if params else path
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", target, body=self.body, headers=self.headers)
                response = self._conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"POST {target} answered {response.status}: {data[:300]!r}")
            return data
        raise AssertionError("not reached")

    def timed(self, path: str, n: int, **params: str) -> list[float]:
        """Milliseconds of `n` POSTs of `path`, one after the other."""
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            self.post(path, **params)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _side_by_side(entry: BenchModel, runtime_name: str, client: KeepAliveClient, png: bytes,
                  n: int) -> tuple[list[float], list[float]]:
    """`n` in-process samples (decode + preprocess + forward with the server's runtime) and `n` HTTP /predict
    samples, taken in turn: in-process, HTTP, in-process, HTTP, ..."""
    loaded = entry.loaded
    cfg = loaded.data_config
    runtime = build_runtime(runtime_name, loaded.model, torch.zeros(1, cfg.in_chans, cfg.input_size, cfg.input_size))

    def in_process() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            runtime(loaded.preprocess.finish(loaded.preprocess.resize(read_image(png))[None]))
        return (time.perf_counter() - started) * 1000

    for _ in range(2):  # warm-up
        in_process()
        client.post("/predict")
    local, remote = [], []
    for _ in range(n):
        local.append(in_process())
        remote.extend(client.timed("/predict", 1))
    return local, remote


async def _load(url: str, png: bytes, seconds: float, clients: int = CLIENTS) -> dict[str, Any]:
    """`clients` clients each posting /predict back to back for `seconds`; latencies of completed ones."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = await client.post("/predict", files=_files(png))
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await client.post("/predict", files=_files(png))
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "seconds": elapsed}


def _interleaved_load(urls: dict[str, str], png: bytes, seconds: float, rounds: int,
                      clients: int = CLIENTS) -> dict[str, Any]:
    """Load each server in turn for `seconds / rounds`, `rounds` times, so that both see the same changes in
    what else runs on the machine; req/s and latencies over all of each one's rounds."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in urls}
    for _ in range(rounds):
        for mode, url in urls.items():
            runs[mode].append(asyncio.run(_load(url, png, seconds / rounds, clients)))
    out = {}
    for mode, parts in runs.items():
        latencies = [ms for p in parts for ms in p["latencies"]]
        elapsed = sum(p["seconds"] for p in parts)
        out[mode] = {"requests": len(latencies), "errors": sum(p["errors"] for p in parts), "seconds": elapsed,
                     "rounds": rounds, "req_per_s": len(latencies) / elapsed, "latency_ms": summarize(latencies)}
    return out


def _first_predict_seconds(server: srv.Server, png: bytes) -> float:
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                if client.post("/predict", files=_files(png)).status_code == 200:
                    return time.perf_counter() - server.started_at
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError("no successful /predict within 120 s")


def bench_model(entry: BenchModel, *, quick: bool, rss_requests: int) -> dict[str, Any]:
    png = SAMPLE_PNG.read_bytes()
    sequential_n = 15 if quick else 60
    load_seconds = 6.0 if quick else 20.0
    out: dict[str, Any] = {"model": entry.label}
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        root = Path(tmp)
        url = srv.make_registry(root, {"bench": _checkpoint(entry, root)})
        common = {"default_model": "bench", "alias_refresh_seconds": 3600}

        # 7. start-up: process start to the first successful /predict (the runtime trial runs after it);
        # the median of several starts, the last of which serves the rest of the benchmarks
        starts = []
        for _ in range(0 if quick else 2):
            server = srv.start(root, url, wait_ready=False, **common)
            try:
                starts.append(_first_predict_seconds(server, png))
            finally:
                server.stop()
        server = srv.start(root, url, wait_ready=False, **common)
        try:
            starts.append(_first_predict_seconds(server, png))
            out["startup_s"] = starts
            out["startup_to_first_predict_s"] = statistics.median(starts)
            serving = srv.wait_runtime_chosen(server.url, "bench")
            out["runtime"] = serving["runtime"] if serving else "eager"
            out["runtime_trials"] = serving["runtime_trials"] if serving else []
            client = KeepAliveClient(server.url, png)
            try:
                client.timed("/predict", 5)
                # 2. HTTP against in-process, side by side
                in_process, http = _side_by_side(entry, out["runtime"], client, png, sequential_n)
                out["in_process_ms"], out["http_ms"] = summarize(in_process), summarize(http)
                out["http_over_in_process"] = out["http_ms"]["median"] / out["in_process_ms"]["median"]
                out["http_minus_in_process_ms"] = out["http_ms"]["median"] - out["in_process_ms"]["median"]
                # 4. Grad-CAM over predict
                cams = client.timed("/gradcam", max(5, sequential_n // 3))
                out["gradcam_ms"] = summarize(cams)
                out["gradcam_over_predict"] = out["gradcam_ms"]["median"] / out["http_ms"]["median"]
                # 7. memory: after warm-up, then after `rss_requests` more /predict
                if rss_requests:
                    rss_warm = server.rss_bytes()
                    client.timed("/predict", rss_requests)
                    rss_after = server.rss_bytes()
                    out["rss"] = {"requests": rss_requests, "warm_mb": rss_warm / 2**20,
                                  "after_mb": rss_after / 2**20, "growth": rss_after / rss_warm - 1}
            finally:
                client.close()
            # 3. load: this server (batching) and one with micro-batching off, loaded in alternation
            unbatched = srv.start(root, url, batch_max_size=1, runtime_candidates=f'["{out["runtime"]}"]',
                                  **common)
            try:
                srv.wait_runtime_chosen(unbatched.url, "bench")
                load = _interleaved_load({"batched": server.url, "unbatched": unbatched.url}, png,
                                         load_seconds, rounds=2 if quick else 4)
                out["load_batched"], out["load_unbatched"] = load["batched"], load["unbatched"]
            finally:
                unbatched.stop()
        finally:
            server.stop()
    batched, unbatched = out["load_batched"], out["load_unbatched"]
    out["throughput_batched_over_unbatched"] = batched["req_per_s"] / unbatched["req_per_s"]
    out["p99_batched_over_p50_unbatched"] = batched["latency_ms"]["p99"] / unbatched["latency_ms"]["median"]
    return out


def run(models: list[BenchModel], *, quick: bool = False) -> dict[str, Any]:
    rows = []
    for i, entry in enumerate(models):
        rss_requests = (500 if quick else 5000) if i == 0 else 0  # memory: the first (shipped) model
        rows.append(bench_model(entry, quick=quick, rss_requests=rss_requests))
    return {"clients": CLIENTS, "models": rows}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'model':<28}{'runtime':>13}{'in-proc':>9}{'HTTP':>8}{'p99':>8}{'ratio':>7}{'+ms':>7}"
          f"{'CAM ms':>8}{'CAM/pred':>9}{'start s':>8}")
    for r in result["models"]:
        print(f"{r['model']:<28}{r['runtime']:>13}{r['in_process_ms']['median']:>9.1f}{r['http_ms']['median']:>8.1f}"
              f"{r['http_ms']['p99']:>8.1f}{r['http_over_in_process']:>7.2f}{r['http_minus_in_process_ms']:>7.1f}"
              f"{r['gradcam_ms']['median']:>8.1f}{r['gradcam_over_predict']:>9.2f}"
              f"{r['startup_to_first_predict_s']:>8.2f}")
    print(f"\nload: {result['clients']} concurrent clients")
    print(f"{'model':<28}{'mode':>10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for r in result["models"]:
        for mode in ("unbatched", "batched"):
            load = r[f"load_{mode}"]
            print(f"{r['model']:<28}{mode:>10}{load['req_per_s']:>8.1f}{load['latency_ms']['median']:>9.1f}"
                  f"{load['latency_ms']['p99']:>9.1f}{load['errors']:>8}")
        print(f"{'':<28}{'ratio':>10}{r['throughput_batched_over_unbatched']:>8.2f}x   "
              f"batched p99 / unbatched p50 = {r['p99_batched_over_p50_unbatched']:.2f}")
    for r in result["models"]:
        if "rss" in r:
            m = r["rss"]
            print(f"\nmemory ({r['model']}): {m['warm_mb']:.0f} MB after warm-up, {m['after_mb']:.0f} MB after "
                  f"{m['requests']} /predict ({m['growth']:+.1%})")
