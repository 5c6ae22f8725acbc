"""Helpers shared by the benchmarks: machine description, timing statistics, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, p99, min, max and the spread (IQR) of timings in milliseconds."""
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    return {"n": len(ordered), "median": statistics.median(ordered), "p99": q[98], "min": ordered[0],
            "max": ordered[-1], "iqr": q[74] - q[24]}


def interleaved(runtimes: dict[str, Callable[[Any], Any]], x: Any, repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and calling-thread CPU milliseconds of each runtime called on `x` in turn, `repeats` times
    after two warm-up calls (with one thread, ONNX Runtime and torch compute on the calling thread, so its CPU
    time is the work's, whatever else the machine runs)."""
    for run in runtimes.values():
        run(x), run(x)
    wall: dict[str, list[float]] = {name: [] for name in runtimes}
    cpu: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(repeats):
        for name, run in runtimes.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            run(x)
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.thread_time() - start_cpu) * 1000)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in runtimes}


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str) + "\n")
    return path
