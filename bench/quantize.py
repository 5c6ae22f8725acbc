"""Reduced precision at batch 1, side by side in one process: fp32 ONNX Runtime (what serving chooses today)
against int8 static QDQ (in ONNX Runtime and in OpenVINO) and bf16 (`ml.quantize`), for DenseNet-121@224 and
the shipped models.

    python -m bench.quantize [--repeats 30] [--no-shipped] [--threads 1]

DenseNet-121 has random weights (speed does not depend on them; there is no test split to admit it by), its
int8 ranges calibrated on the shipped sample radiographs. Each shipped model with a registered dataset
(data/datasets.toml via models/manifest.toml) runs `ml.quantize.trial`: calibration on its training split,
AUROC and probabilities on its test split, and the admission verdict. Timings are medians of `--repeats`
calls taken in turn (fp32, int8, bf16, fp32, ...), one torch/ORT thread as serving uses on 2 cores.
"""

from __future__ import annotations

import argparse
import time
import tomllib

import torch

from bench.common import REPO_ROOT, interleaved
from bench.models import densenet121_224


def densenet(repeats: int, threads: int) -> None:
    from ml.imaging import read_image
    from ml.quantize import (
        bf16_available,
        bf16_runtime,
        export_onnx,
        int8_weight_type,
        onnx_runtime,
        openvino_available,
        openvino_runtime,
        quantize_int8,
    )

    loaded = densenet121_224()
    samples = sorted((REPO_ROOT / "data" / "samples").iterdir())
    calibration = [loaded.preprocess(read_image(p))[None].numpy() for p in samples for _ in range(2)]
    x = torch.from_numpy(calibration[0])
    start = time.perf_counter()
    onnx = export_onnx(loaded.model, x)
    int8 = quantize_int8(onnx, calibration)
    print(f"DenseNet-121@224: exported and quantized in {time.perf_counter() - start:.1f} s "
          f"(ONNX Runtime's weights: {int8_weight_type()})")
    runtimes = {"fp32 onnxruntime": onnx_runtime("onnxruntime", onnx, threads),
                "int8 static QDQ": onnx_runtime("int8_static", int8, threads)}
    if openvino_available():  # signed weights on any CPU (ml.quantize: int8_openvino)
        runtimes["fp32 openvino"] = openvino_runtime("openvino", onnx, threads)
        signed = int8 if int8_weight_type() == "int8" else quantize_int8(onnx, calibration, "int8")
        runtimes["int8 openvino"] = openvino_runtime("int8_openvino", signed, threads)
    if bf16_available():
        runtimes["bf16 autocast"] = bf16_runtime(loaded.model)
    medians = interleaved(runtimes, x, repeats)
    fp32_wall, fp32_cpu = medians["fp32 onnxruntime"]
    with torch.inference_mode():
        reference = torch.sigmoid(runtimes["fp32 onnxruntime"](x))
        for name, run in runtimes.items():
            diff = float((torch.sigmoid(run(x).float()) - reference).abs().max())
            wall, cpu = medians[name]
            print(f"  {name:<18} {wall:8.1f} ms wall ({fp32_wall / wall:4.2f}x), {cpu:7.1f} ms thread CPU "
                  f"({fp32_cpu / cpu:4.2f}x fp32 ORT)  max prob diff {diff:.4f}")
    # OpenVINO computes on threads of its own: its speed is read from the wall clock (the calling thread waits)
    speedup, which = max((fp32_cpu / medians["int8 static QDQ"][1], "int8 static QDQ, thread CPU"),
                         *([(fp32_wall / medians["int8 openvino"][0], "int8 openvino, wall")]
                           if "int8 openvino" in medians else []))
    print(f"  target: int8 >= 2x fp32 ORT: {speedup:.2f}x ({which}), {'met' if speedup >= 2 else 'MISSED'}")


def shipped(repeats: int, threads: int) -> None:
    from ml.data import create_dataset
    from ml.inference import LoadedModel
    from ml.quantize import trial

    datasets = {d["name"]: d for d in tomllib.loads((REPO_ROOT / "data" / "datasets.toml").read_text())["dataset"]}
    print(f"\n{'model':<20}{'runtime':<13}{'fp32 ms':>8}{'ms':>8}{'speed-up':>9}{'dAUROC':>8}{'max dp':>8}"
          f"{'mean dp':>8}  verdict")
    for entry in tomllib.loads((REPO_ROOT / "models" / "manifest.toml").read_text())["model"]:
        if entry.get("dataset") not in datasets:
            print(f"{entry['name']:<20}(no registered dataset: not tried)")
            continue
        d = datasets[entry["dataset"]]
        ds = create_dataset(d["kind"], REPO_ROOT / "data" / d["path"], **d.get("options", {}))
        loaded = LoadedModel.from_checkpoint(REPO_ROOT / "models" / entry["path"])
        result = trial(loaded, ds.split("train"), ds.split("test"), threads=threads, repeats=repeats)
        for a in result.admissions:
            if a.median_ms is None:
                print(f"{entry['name']:<20}{a.runtime:<13}  {a.reason}")
                continue
            print(f"{entry['name']:<20}{a.runtime:<13}{a.median_ms_fp32:>8.3f}{a.median_ms:>8.3f}"
                  f"{a.median_ms_fp32 / a.median_ms:>8.2f}x{a.max_auroc_change or 0:>8.4f}"
                  f"{a.max_probability_diff:>8.4f}{a.mean_probability_diff:>8.4f}  "
                  f"{'admitted' if a.admitted else 'refused: ' + a.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quantize", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-shipped", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    densenet(args.repeats, args.threads)
    if not args.no_shipped:
        shipped(args.repeats, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
