"""The GPU suite, in one call: `python -m bench gpu [--device cuda] [--tiny] [--out PATH]`.

1. train: AMP DenseNet-121 @ 224 training images/s on one device (the step `fit` takes: batch augmentation
   and normalisation on the device, autocast, gradient scaling, AdamW), over a sweep of batch sizes, with
   peak memory; with several GPUs, data-parallel `fit` (`ml.training.distributed`) on 1 and N devices.
2. inference: batched forward throughput and latency at batch 1-64, fp32 eager and AMP (autocast), and
   channels-last AMP.
3. batching: the batching server's gain: `cxr api` serving on the device with its micro-batching (the GPU
   defaults) against the same server with batching off, 16 concurrent clients (the 1.5x target).
4. gradcam: Grad-CAM (`compute_cams`) on the device, one image, one target.
5. recommend: the settings a GPU worker and a GPU API should use, from the figures above: the training batch
   with the best throughput, loader processes to feed it from the prepared cache (at the per-core rate
   measured here), the serving batch size and wait.

One JSON (bench/results/gpu.json, or --out). `--tiny` (small model, small input, few repeats) runs the same
code in about a minute on a CPU: the test suite runs `--device cpu --tiny`, so the suite is known to run
when a GPU is lent. Nothing here asserts a target; figures are reported.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import REPO_ROOT, machine, write_result

CLIENTS = 16


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Milliseconds per call (device work included)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    from ml.device import resolve_amp

    return resolve_amp("auto", device) if device.type == "cuda" else None


# --- 1. training ------------------------------------------------------------------------------------


def train_throughput(model_name: str, size: int, batch: int, device: torch.device, steps: int,
                     warmup: int) -> dict[str, Any]:
    """Images/s of the training step `fit` runs, on random images (speed does not depend on them)."""
    from ml.config import AugmentConfig
    from ml.device import autocast
    from ml.models import create_model
    from ml.training.losses import masked_bce
    from ml.transforms import BatchAugment, Preprocess, resolve_data_config

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=14).to(device).train()
    preprocess = Preprocess(resolve_data_config(model.cfg, input_size=size))
    augment = BatchAugment(AugmentConfig())
    amp = _amp_dtype(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    images = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 2, (batch, 14), device=device).float()
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        x = preprocess.finish(augment(images.float().div_(255), generator))
        with autocast(device, amp):
            logits = model(x)
        loss = masked_bce(logits.float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = _timed(step, device, steps, warmup)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"batch": batch, "images_per_s": batch * 1000 / median, "step_ms": median, "peak_gib": peak,
            "amp": str(amp).replace("torch.", "") if amp else "off"}


def train_sweep(model_name: str, size: int, batches: list[int], device: torch.device, steps: int,
                warmup: int) -> list[dict[str, Any]]:
    rows = []
    for batch in batches:
        try:
            rows.append(train_throughput(model_name, size, batch, device, steps, warmup))
        except torch.OutOfMemoryError:
            rows.append({"batch": batch, "error": "out of memory"})
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def ddp_scaling(device: torch.device, size: int, tiny: bool) -> dict[str, Any]:
    """Data-parallel `fit` on every GPU against one, from the prepared cache (DenseNet-121 on pneumoniamnist
    resized to `size`: the images are small, the model's cost is the same)."""
    from ml.config import TrainConfig
    from ml.training.distributed import launch
    from ml.training.loop import fit

    count = torch.cuda.device_count() if device.type == "cuda" else 1
    if count < 2:  # (the CPU code path is tested by tests/ml/training/test_distributed.py)
        return {"skipped": f"{count} {device.type} device: data parallelism needs two or more GPUs"}
    batch = 8 * count if tiny else 64 * count
    params = {"epochs": 1, "batch_size": batch, "input_size": size, "max_train_samples": batch * (2 if tiny else 40),
              "max_eval_samples": batch, "scheduler": "none", "device": device.type, "test_split": None}
    model = "simple_cnn" if tiny else "densenet121"
    out: dict[str, Any] = {"devices": count, "global_batch": batch, "model": model}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, count):
            config = TrainConfig.parse({"model": model, "dataset": "pneumoniamnist",
                                        "data_root": str(REPO_ROOT / "data" / "pneumoniamnist"),
                                        "params": {**params, "devices": n}})
            run = Path(tmp) / f"run{n}"
            result = (launch(config, run, cache_dir=Path(tmp) / "cache") if n > 1
                      else fit(config, run, cache_dir=Path(tmp) / "cache"))
            out[f"images_per_s_{n}"] = result.history[-1]["train"]["images_per_s"]
    out["scaling"] = out[f"images_per_s_{count}"] / out["images_per_s_1"]
    return out


# --- 2. inference -----------------------------------------------------------------------------------


def inference_sweep(model_name: str, size: int, batches: list[int], device: torch.device, repeats: int,
                    warmup: int) -> list[dict[str, Any]]:
    from ml.device import autocast
    from ml.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=14).to(device).eval()
    channels_last = create_model(model_name, num_classes=14).to(device).eval().to(memory_format=torch.channels_last)
    channels_last.load_state_dict(model.state_dict())
    amp = _amp_dtype(device)
    modes: dict[str, Callable[[torch.Tensor], Any]] = {"fp32": model}
    if amp is not None:
        def amp_eager(x: torch.Tensor) -> Any:
            with autocast(device, amp):
                return model(x)

        def amp_channels_last(x: torch.Tensor) -> Any:
            with autocast(device, amp):
                return channels_last(x.contiguous(memory_format=torch.channels_last))

        modes["amp"], modes["amp_channels_last"] = amp_eager, amp_channels_last
    rows = []
    for batch in batches:
        x = torch.randn(batch, model.cfg.in_chans, size, size, device=device)
        row: dict[str, Any] = {"batch": batch}
        for mode, run in modes.items():
            try:
                with torch.inference_mode():
                    times = _timed(lambda run=run, x=x: run(x), device, repeats, warmup)
            except torch.OutOfMemoryError:
                row[mode] = {"error": "out of memory"}
                continue
            median = statistics.median(times)
            row[mode] = {"latency_ms": median, "p99_ms": float(np.percentile(times, 99)),
                         "images_per_s": batch * 1000 / median}
        rows.append(row)
    return rows


# --- 3. the batching server -------------------------------------------------------------------------


def batching_gain(device: torch.device, tiny: bool, seconds: float) -> dict[str, Any]:
    """Req/s and latency of `cxr api` on `device` with micro-batching (the device's defaults) and without."""
    from app.settings import AppSettings
    from bench import server as srv
    from bench.models import bench_models
    from bench.serving import SAMPLE_PNG, _checkpoint, _interleaved_load

    entry = bench_models(include_densenet=not tiny)[-1]  # DenseNet-121 @224; tiny: the last shipped model
    serve = "cuda" if device.type == "cuda" else "cpu"
    defaults = AppSettings.model_fields
    batch = defaults["gpu_batch_max_size" if serve == "cuda" else "batch_max_size"].default
    png = SAMPLE_PNG.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cxr-bench-gpu-") as tmp:
        root = Path(tmp)
        url = srv.make_registry(root, {"bench": _checkpoint(entry, root)})
        common = {"default_model": "bench", "alias_refresh_seconds": 3600, "serve_device": serve,
                  "runtime_candidates": "[]", "gpu_runtime_candidates": "[]"}
        batched = srv.start(root, url, **common)
        try:
            unbatched = srv.start(root, url, **{**common, "batch_max_size": 1, "gpu_batch_max_size": 1})
            try:
                load = _interleaved_load({"batched": batched.url, "unbatched": unbatched.url}, png, seconds,
                                         rounds=2, clients=CLIENTS)
            finally:
                unbatched.stop()
        finally:
            batched.stop()
    return {"model": entry.label, "serve_device": serve, "batch_max_size": batch, "clients": CLIENTS,
            "runtime": "eager", **load,
            "throughput_batched_over_unbatched": load["batched"]["req_per_s"] / load["unbatched"]["req_per_s"],
            "target": ">= 1.5x"}


# --- 4. Grad-CAM ------------------------------------------------------------------------------------


def gradcam_ms(model_name: str, size: int, device: torch.device, repeats: int) -> dict[str, Any]:
    from ml.explain.gradcam import compute_cams
    from ml.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=14).to(device).eval()
    x = torch.randn(1, model.cfg.in_chans, size, size, device=device)
    times = _timed(lambda: compute_cams(model, x, [0]), device, repeats, 1)
    return {"model": model_name, "input_size": size, "median_ms": statistics.median(times),
            "p99_ms": float(np.percentile(times, 99)), "device": str(device)}


# --- 5. recommended settings ------------------------------------------------------------------------


def per_core_feed(size: int, seconds: float) -> float:
    """Images/s one core delivers from a prepared (uint8) cache with the training augmentation applied."""
    from ml.config import AugmentConfig
    from ml.transforms import BatchAugment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        array = np.random.default_rng(0).integers(0, 256, (256, size, size), dtype=np.uint8)
        augment, generator = BatchAugment(AugmentConfig()), torch.Generator().manual_seed(0)
        images, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            idx = np.sort(np.random.default_rng(images).choice(len(array), 32, replace=False))
            augment(torch.from_numpy(array[idx]).unsqueeze(1).float().div_(255), generator)
            images += 32
        return images / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def recommend(result: dict[str, Any], device: torch.device) -> dict[str, Any]:
    trained = [r for r in result["train"] if "images_per_s" in r]
    best = max(trained, key=lambda r: r["images_per_s"]) if trained else None
    per_core = result["per_core_feed_images_per_s"]
    rows = result["inference"]
    mode = "amp_channels_last" if device.type == "cuda" else "fp32"
    rates = {r["batch"]: r[mode]["images_per_s"] for r in rows if "images_per_s" in r.get(mode, {})}
    top = max(rates.values()) if rates else 0
    serve_batch = min((b for b, v in rates.items() if v >= 0.9 * top), default=1)
    prefix = "GPU_" if device.type == "cuda" else ""
    single = next((r[mode]["latency_ms"] for r in rows if r["batch"] == 1 and "latency_ms" in r.get(mode, {})), 5.0)
    out: dict[str, Any] = {
        "worker": {"CXR_DEVICES": max(1, torch.cuda.device_count()) if device.type == "cuda" else 1,
                   "CXR_DATA_CACHE": True,
                   "job params": {"batch_size": best["batch"] if best else None, "amp": "auto",
                                  "num_workers": 0,  # the prepared cache feeds batches without loader processes
                                  "devices": max(1, torch.cuda.device_count()) if device.type == "cuda" else 1}},
        "api": {"CXR_SERVE_DEVICE": "cuda" if device.type == "cuda" else "cpu",
                f"CXR_{prefix}BATCH_MAX_SIZE": serve_batch,
                f"CXR_{prefix}BATCH_MAX_WAIT_MS": round(min(10.0, max(1.0, single)), 1)},
        "why": {"training_images_per_s": best["images_per_s"] if best else None,
                "cores_to_feed_it_with_augmentation": math.ceil(best["images_per_s"] / per_core) if best else None,
                "per_core_feed_images_per_s": per_core,
                "serving": f"smallest batch within 90 % of the best {mode} throughput; wait about one batch-1 "
                           "forward"},
    }
    return out


# --- the suite --------------------------------------------------------------------------------------


def run(device_name: str = "cuda", tiny: bool = False, serving_seconds: float | None = None) -> dict[str, Any]:
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu (and --tiny) to check the suite runs")
    model, size = ("simple_cnn", 32) if tiny else ("densenet121", 224)
    steps, warmup, repeats = (2, 1, 3) if tiny else (15, 5, 30)
    started = time.perf_counter()
    result: dict[str, Any] = {"device": str(device), "tiny": tiny, "model": model, "input_size": size,
                              "machine": machine()}
    timings: dict[str, float] = {}

    def part(name: str, fn: Callable[[], Any]) -> None:
        t = time.perf_counter()
        result[name] = fn()
        timings[name] = round(time.perf_counter() - t, 1)
        print(f"{name}: {timings[name]:.0f} s", file=sys.stderr, flush=True)

    part("train", lambda: train_sweep(model, size, [4, 8] if tiny else [32, 64, 128, 256], device, steps, warmup))
    part("ddp", lambda: ddp_scaling(device, size if tiny else 224, tiny))
    part("inference", lambda: inference_sweep(model, size, [1, 2, 4] if tiny else [1, 2, 4, 8, 16, 32, 64],
                                              device, repeats, warmup))
    part("batching", lambda: batching_gain(device, tiny, serving_seconds or (4.0 if tiny else 30.0)))
    part("gradcam", lambda: gradcam_ms(model, size, device, repeats))
    part("per_core_feed_images_per_s", lambda: per_core_feed(size if tiny else 224, 0.5 if tiny else 3.0))
    result["recommended"] = recommend(result, device)
    result["seconds"] = {**timings, "total": round(time.perf_counter() - started, 1)}
    return result


def print_summary(r: dict[str, Any]) -> None:
    print(f"device {r['device']} ({r['machine']['cuda'] or 'no CUDA'}), {r['model']} @ {r['input_size']}")
    for row in r["train"]:
        print(f"train batch {row['batch']:>4}: " + (f"{row['images_per_s']:8.1f} img/s  amp {row['amp']}"
                                                   if "images_per_s" in row else row["error"]))
    print(f"ddp: {r['ddp']}")
    for row in r["inference"]:
        print(f"infer batch {row['batch']:>3}: " + "  ".join(
            f"{mode} {v['images_per_s']:.0f} img/s ({v['latency_ms']:.1f} ms)" for mode, v in row.items()
            if isinstance(v, dict) and "images_per_s" in v))
    b = r["batching"]
    print(f"batching server: {b['batched']['req_per_s']:.1f} vs {b['unbatched']['req_per_s']:.1f} req/s = "
          f"{b['throughput_batched_over_unbatched']:.2f}x (target {b['target']})")
    print(f"grad-cam: {r['gradcam']['median_ms']:.1f} ms")
    print(f"recommended: {json.dumps(r['recommended'], indent=1)}")
    print(f"seconds: {r['seconds']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a small model and input, few repeats (checks it runs)")
    parser.add_argument("--serving-seconds", type=float, help="load time per server in the batching part")
    parser.add_argument("--out", type=Path, help="the JSON (default bench/results/gpu.json)")
    args = parser.parse_args(argv)
    result = run(args.device, args.tiny, args.serving_seconds)
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"json: {args.out}")
    else:
        print(f"json: {write_result('gpu', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
