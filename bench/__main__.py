"""Every benchmark side by side in one run: `make bench`, or

    python -m bench [--quick] [PART ...]        parts: floor serving runtimes training (default: all)
    python -m bench gpu [--device cuda] [--tiny]    the GPU suite (bench/gpu.py), on its own

Each part prints its table; the raw numbers go to bench/results/<part>.json (gitignored) and a summary of
every figure against its target to bench/results/summary.json. The API benchmarks start `cxr api` as a
subprocess on a temporary registry. Nothing here fails on a missed target: figures are reported, not asserted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from app.serving.pool import set_torch_threads
from app.settings import AppSettings
from bench import floor, runtimes, serving, training
from bench.common import machine, write_result
from bench.models import BenchModel, bench_models

PARTS = ("floor", "serving", "runtimes", "training")


def _targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met) rows for the figures the performance issue sets targets for."""
    rows: list[tuple[str, str, str, str]] = []

    def add(figure: str, value: float, fmt: str, target: str, met: bool) -> None:
        rows.append((figure, format(value, fmt), target, "yes" if met else "NO"))

    for r in results.get("floor", {}).get("models", []):
        add(f"{r['model']}: forward / compute floor", r["forward_over_floor"], ".1f", "(reported)", True)
    for r in results.get("serving", {}).get("models", []):
        dense = "densenet121" in r["model"]
        if dense:
            add(f"{r['model']}: HTTP / in-process", r["http_over_in_process"], ".2f", "<= 1.25x",
                r["http_over_in_process"] <= 1.25)
            add(f"{r['model']}: batched / unbatched req/s", r["throughput_batched_over_unbatched"], ".2f",
                ">= 1.5x", r["throughput_batched_over_unbatched"] >= 1.5)
            add(f"{r['model']}: batched p99 / unbatched p50", r["p99_batched_over_p50_unbatched"], ".2f",
                "<= 2x", r["p99_batched_over_p50_unbatched"] <= 2)
        else:
            add(f"{r['model']}: HTTP - in-process (ms)", r["http_minus_in_process_ms"], ".1f", "<= 5 ms",
                r["http_minus_in_process_ms"] <= 5)
        add(f"{r['model']}: /gradcam / /predict", r["gradcam_over_predict"], ".2f", "<= 2.5x",
            r["gradcam_over_predict"] <= 2.5)
        add(f"{r['model']}: start-up to first /predict (s)", r["startup_to_first_predict_s"], ".1f", "< 10 s",
            r["startup_to_first_predict_s"] < 10)
        if "rss" in r:
            add(f"{r['model']}: RSS growth after {r['rss']['requests']} /predict", 100 * r["rss"]["growth"],
                "+.1f", "within 10 %", abs(r["rss"]["growth"]) <= 0.10)
    for r in results.get("runtimes", {}).get("models", []):
        target = ">= 1.5x" if "densenet121" in r["model"] else "(reported)"
        add(f"{r['model']}: chosen runtime ({r['chosen']}) / eager speed-up", r["speedup"], ".2f", target,
            r["speedup"] >= 1.5 or target == "(reported)")
    for r in results.get("training", {}).get("cases", []):
        add(f"train {r['model']}@{r['input_size']}: fit / bare loop", r["fit_over_bare"], ".2f", ">= 0.95x",
            r["fit_over_bare"] >= 0.95)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gpu"]:
        from bench import gpu

        return gpu.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", default=[], metavar="PART",
                        help=f"which benchmarks ({', '.join(PARTS)}; default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter load, fewer requests")
    parser.add_argument("--no-densenet", action="store_true", help="only the shipped models")
    parser.add_argument("--model", default="", help="only models whose label contains this text")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = args.parts or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    # every in-process figure (training too) uses the threads the API uses: the cores divided among its pool
    # workers (on 2 shared cores, 1 thread trained simple_cnn 2.5x faster than 2)
    set_torch_threads(None, AppSettings.model_fields["inference_workers"].default)
    models: list[BenchModel] = [m for m in bench_models(include_densenet=not args.no_densenet)
                                if args.model in m.label]
    steps: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None]]] = {
        "floor": (lambda: floor.run(models, quick=args.quick), floor.print_table),
        "serving": (lambda: serving.run(models, quick=args.quick), serving.print_table),
        "runtimes": (lambda: runtimes.run(models, quick=args.quick), runtimes.print_table),
        "training": (lambda: training.run(quick=args.quick), training.print_table),
    }
    print(f"machine: {machine()}\n")
    results: dict[str, Any] = {}
    for part in parts:
        started = time.perf_counter()
        print(f"== {part} ==", flush=True)
        run, show = steps[part]
        results[part] = run()
        show(results[part])
        print(f"({time.perf_counter() - started:.0f} s; raw: {write_result(part, results[part])})\n", flush=True)
    rows = _targets(results)
    print("== figures against targets ==")
    width = max((len(r[0]) for r in rows), default=10)
    for figure, value, target, met in rows:
        print(f"{figure:<{width}}  {value:>8}  {target:<12} {met}")
    write_result("summary", {"quick": args.quick, "parts": parts, "targets": [
        {"figure": f, "measured": v, "target": t, "met": m} for f, v, t, m in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
