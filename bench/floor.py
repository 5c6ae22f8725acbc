"""Benchmark 1, the floor: per model, its FLOPs per image, this machine's measured matrix-multiply rate,
the compute floor per image that follows, and the in-process time of decode + preprocess + forward of a
1024x1024 PNG at batch 1 (eager and the chosen runtime), with the ratio of forward time to the floor.

    python -m bench.floor
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import REPO_ROOT, summarize, write_result
from bench.models import BenchModel, bench_models
from ml.imaging import read_image
from ml.runtime import choose_runtime, example_inputs

SAMPLE_PNG = REPO_ROOT / "data" / "samples" / "nih_cxr_1024.png"


def matmul_gflops(n: int = 1024, repeats: int = 20) -> dict[str, float]:
    """float32 GEMM rate with the threads torch uses (median of `repeats` products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - started) / 1e9)
    return {"median": statistics.median(rates), "max": max(rates), "n": n}


def flops_per_image(model: torch.nn.Module, shape: tuple[int, int, int]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    return counter.get_total_flops()


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run(models: list[BenchModel] | None = None, *, quick: bool = False) -> dict[str, Any]:
    repeats = 8 if quick else 20
    rate = matmul_gflops()
    png = SAMPLE_PNG.read_bytes()
    rows = []
    for entry in models if models is not None else bench_models():
        loaded = entry.loaded
        shape = (loaded.data_config.in_chans, loaded.data_config.input_size, loaded.data_config.input_size)
        flops = flops_per_image(loaded.model, shape)
        floor_ms = flops / (rate["median"] * 1e9) * 1000
        choice = choose_runtime(loaded.model, example_inputs(shape), entry.to_probabilities, repeats=5)
        x = loaded.preprocess(read_image(png))[None]
        decode = _time(lambda: read_image(png), repeats)
        preprocess = _time(lambda: loaded.preprocess(read_image(png)), repeats)
        eager = _time(lambda: loaded.predict_tensor(x), repeats)
        chosen = _time(lambda: choice.runtime(x), repeats)
        end_to_end = _time(lambda: choice.runtime(loaded.preprocess(read_image(png))[None]), repeats)
        rows.append({
            "model": entry.label, "gflops_per_image": flops / 1e9, "floor_ms": floor_ms,
            "decode_ms": summarize(decode), "decode_preprocess_ms": summarize(preprocess),
            "forward_eager_ms": summarize(eager), "runtime": choice.name, "forward_runtime_ms": summarize(chosen),
            "end_to_end_ms": summarize(end_to_end),
            "forward_over_floor": statistics.median(chosen) / floor_ms if floor_ms else None,
        })
    return {"matmul_gflops": rate, "models": rows}


def print_table(result: dict[str, Any]) -> None:
    rate = result["matmul_gflops"]
    print(f"matrix multiply ({rate['n']}x{rate['n']} fp32, {torch.get_num_threads()} threads): "
          f"{rate['median']:.1f} GFLOP/s median, {rate['max']:.1f} max")
    print(f"{'model':<26}{'GFLOP/img':>10}{'floor ms':>10}{'decode':>9}{'+prep':>9}{'eager':>9}"
          f"{'runtime':>14}{'fwd ms':>9}{'e2e ms':>9}{'fwd/floor':>10}")
    for r in result["models"]:
        print(f"{r['model']:<26}{r['gflops_per_image']:>10.3f}{r['floor_ms']:>10.2f}"
              f"{r['decode_ms']['median']:>9.1f}{r['decode_preprocess_ms']['median']:>9.1f}"
              f"{r['forward_eager_ms']['median']:>9.1f}{r['runtime']:>14}{r['forward_runtime_ms']['median']:>9.1f}"
              f"{r['end_to_end_ms']['median']:>9.1f}{r['forward_over_floor']:>10.1f}")


def main() -> int:
    result = run()
    print_table(result)
    print(f"raw: {write_result('floor', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
