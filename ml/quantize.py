"""Reduced precision as a serving candidate, admitted per model by its own test split.

Two candidates besides the fp32 ONNX Runtime model that serving chooses today:

* `int8_static`: the model exported to ONNX and quantized statically by ONNX Runtime (QDQ format, 8-bit weights
  per output channel, uint8 activations with ranges calibrated on images of the model's *training* split),
  run by ONNX Runtime's CPU provider. The weights are signed (u8s8, VNNI's fast kernels) on a CPU with VNNI;
  without VNNI they are unsigned (u8u8): the AVX2 u8s8 kernel adds pairs of products in 16 bits with
  saturation, which on an AMD EPYC without VNNI moved the 28 px model's test AUROC by 0.056 and a
  probability by 0.98 (refused), where u8u8 stays within 0.0003 and 0.07. `weight_type` records which.
* `int8_openvino`: the same quantization with signed weights, run by OpenVINO's CPU plugin and its own int8
  kernels. DenseNet-121@224 at batch 1 on an EPYC with AVX-512 VNNI (`python -m bench.quantize`): 2.42x fp32
  ONNX Runtime against ONNX Runtime int8's 2.26x; for the 28 px models its per-call overhead makes it slower
  than fp32 (0.6-0.7x), so the runtime trial leaves it there. Offered where OpenVINO is installed (the API's
  extra). Whether its kernels saturate on a CPU without VNNI, as ONNX Runtime's u8s8 does, was not measured
  (no such CPU at hand): the admission is what guards it.
* `bf16`: eager PyTorch in channels-last under `torch.autocast(bfloat16)` (oneDNN's AVX-512 BF16 kernels),
  offered only where the CPU has them.

`trial` runs the fp32 model and each candidate on the test split and admits a candidate only when every
label's AUROC stays within `AUROC_TOLERANCE` (0.005) of fp32's and the probabilities stay within the stated
bound: none moves by more than `PROBABILITY_BOUND` (0.10) and they move by at most `MEAN_PROBABILITY_BOUND`
(0.01) on average (the shipped 28 px model's int8: 0.076 at most, 0.004 on average, AUROC +0.0001); it
also times each at batch 1. `cxr quantize NAME:VERSION` records the result
with the model version (the int8 model as an artifact), and serving offers an admitted variant to its
runtime trial (`app.serving.served`).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data.base import CXRDataset
from ml.evaluation.metrics import per_class_auroc, probabilities
from ml.inference import LoadedModel
from ml.runtime import Runtime, export_onnx, onnx_runtime, openvino_runtime, time_runtime

AUROC_TOLERANCE = 0.005
PROBABILITY_BOUND = 0.10
MEAN_PROBABILITY_BOUND = 0.01
CALIBRATION_IMAGES = 256
CANDIDATES = ("int8_static", "int8_openvino", "bf16")
INT8_CANDIDATES = ("int8_static", "int8_openvino")  # each stored as its quantized ONNX model


@dataclass
class Admission:
    """What the trial measured for one candidate against fp32, and whether it is admitted."""

    runtime: str
    admitted: bool
    reason: str = ""
    auroc: dict[str, float | None] = field(default_factory=dict)
    auroc_fp32: dict[str, float | None] = field(default_factory=dict)
    max_auroc_change: float | None = None
    max_probability_diff: float | None = None
    mean_probability_diff: float | None = None
    median_ms: float | None = None  # batch 1
    median_ms_fp32: float | None = None  # batch 1, fp32 ONNX Runtime
    test_images: int = 0
    calibration_images: int = 0
    weight_type: str | None = None  # int8: "int8" (u8s8) or "uint8" (u8u8), see int8_weight_type

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialResult:
    admissions: list[Admission]
    models: dict[str, bytes] = field(default_factory=dict)  # each int8 candidate's model, admitted or not


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401 - only whether it is installed (the API's extra)
    except ImportError:
        return False
    return True


def int8_runtime(name: str, onnx: bytes, threads: int | None = None) -> Runtime:
    """An int8 candidate's quantized model (`quantize_int8`) in the runtime it is named after."""
    if name == "int8_openvino":
        return openvino_runtime(name, onnx, threads)
    return onnx_runtime(name, onnx, threads)


def bf16_available() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def int8_weight_type() -> str:
    """"int8" (signed weights) on a CPU with VNNI (AVX-512 VNNI, AVX-VNNI or AMX int8), else "uint8"."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        return "uint8"
    return "int8" if any(caps.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8")) else "uint8"


def quantize_int8(onnx_fp32: bytes, calibration: Sequence[np.ndarray], weight_type: str | None = None) -> bytes:
    """`onnx_fp32` quantized statically (QDQ, per-channel 8-bit weights of `weight_type`, default this CPU's
    `int8_weight_type()`; uint8 activations) with activation ranges from `calibration`: preprocessed
    (1, C, S, S) float32 inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {"x": np.ascontiguousarray(item, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="cxr-quantize-") as tmp:
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(onnx_fp32)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        weights = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[weight_type or int8_weight_type()]
        quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=weights,
                        op_types_to_quantize=["Conv", "Gemm", "MatMul"])
        return int8.read_bytes()


def bf16_runtime(model: torch.nn.Module) -> Runtime:
    """Eager PyTorch in channels-last under bfloat16 autocast; logits returned as float32."""
    channels_last = copy.deepcopy(model).cpu().eval().to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return channels_last(x.contiguous(memory_format=torch.channels_last)).float()

    return Runtime("bf16", run)


def _inputs(loaded: LoadedModel, ds: CXRDataset, batch: int = 64) -> list[torch.Tensor]:
    """The split's images preprocessed for the model, in batches of normalised (B, C, S, S) tensors."""
    out = []
    for start in range(0, len(ds), batch):
        images = [ds.images.load(i) for i in range(start, min(start + batch, len(ds)))]
        out.append(loaded.preprocess.batch(images))
    return out


def _probabilities(runtime: Runtime, batches: list[torch.Tensor], loaded: LoadedModel) -> np.ndarray:
    return np.concatenate([probabilities(runtime(b).float(), loaded.task).numpy() for b in batches])


def _aurocs(labels: list[str], values: np.ndarray) -> dict[str, float | None]:
    return {label: (None if np.isnan(v) else round(float(v), 6)) for label, v in zip(labels, values, strict=True)}


def trial(
    loaded: LoadedModel,
    train: CXRDataset,
    test: CXRDataset,
    *,
    candidates: Sequence[str] = CANDIDATES,
    calibration_images: int = CALIBRATION_IMAGES,
    threads: int | None = None,
    repeats: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> TrialResult:
    """Each candidate against fp32 ONNX Runtime on `test` (see the module docstring), int8 calibrated on
    `calibration_images` images drawn (seeded) from `train`."""
    size = loaded.data_config.input_size
    example = torch.zeros(1, loaded.data_config.in_chans, size, size)
    onnx_fp32 = export_onnx(loaded.model, example)
    fp32 = onnx_runtime("onnxruntime", onnx_fp32, threads)
    progress(f"preprocessing {len(test)} test images")
    batches = _inputs(loaded, test)
    reference = _probabilities(fp32, batches, loaded)
    auroc_fp32 = per_class_auroc(reference, test.labels)
    one = batches[0][:1]
    fp32_ms = statistics.median(time_runtime(fp32, one, repeats=repeats))
    admissions: list[Admission] = []
    models: dict[str, bytes] = {}
    calibration: list[np.ndarray] = []
    quantized: dict[str, bytes] = {}  # by weight type: both int8 candidates share one model where they can
    for name in candidates:
        calibrated, weight_type = 0, None
        if name in INT8_CANDIDATES:
            if name == "int8_openvino" and not openvino_available():
                admissions.append(Admission(name, False, "OpenVINO is not installed (the API's extra)"))
                continue
            if not calibration:
                rng = np.random.default_rng(seed)
                chosen = rng.choice(len(train), size=min(calibration_images, len(train)), replace=False)
                calibration = [loaded.preprocess(train.images.load(int(i)))[None].numpy() for i in sorted(chosen)]
                progress(f"calibrating int8 on {len(calibration)} training images")
            calibrated = len(calibration)
            # OpenVINO's kernels take signed weights on any CPU; ONNX Runtime's only where VNNI adds them exactly
            weight_type = "int8" if name == "int8_openvino" else int8_weight_type()
            if weight_type not in quantized:
                quantized[weight_type] = quantize_int8(onnx_fp32, calibration, weight_type)
            models[name] = quantized[weight_type]
            runtime = int8_runtime(name, models[name], threads)
        elif name == "bf16":
            if not bf16_available():
                admissions.append(Admission(name, False, "this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"))
                continue
            runtime = bf16_runtime(loaded.model)
        else:
            raise ValueError(f"unknown reduced-precision candidate '{name}'; known: {', '.join(CANDIDATES)}")
        progress(f"evaluating {name}")
        probs = _probabilities(runtime, batches, loaded)
        auroc = per_class_auroc(probs, test.labels)
        change = np.abs(auroc - auroc_fp32)
        known = change[~np.isnan(change)]
        max_change = float(known.max()) if known.size else None
        diff = np.abs(probs - reference)
        reasons = []
        if max_change is None:
            reasons.append("no label has both classes in the test split: no AUROC to compare")
        elif max_change > AUROC_TOLERANCE:
            worst = test.pathologies[int(np.nanargmax(change))]
            reasons.append(f"AUROC of {worst} moved by {max_change:.4f} > {AUROC_TOLERANCE}")
        if float(diff.max()) > PROBABILITY_BOUND:
            reasons.append(f"a probability moved by {float(diff.max()):.4f} > {PROBABILITY_BOUND}")
        if float(diff.mean()) > MEAN_PROBABILITY_BOUND:
            reasons.append(f"probabilities moved by {float(diff.mean()):.4f} on average > {MEAN_PROBABILITY_BOUND}")
        admissions.append(Admission(
            runtime=name, admitted=not reasons, reason="; ".join(reasons),
            auroc=_aurocs(test.pathologies, auroc), auroc_fp32=_aurocs(test.pathologies, auroc_fp32),
            max_auroc_change=None if max_change is None else round(max_change, 6),
            max_probability_diff=round(float(diff.max()), 6), mean_probability_diff=round(float(diff.mean()), 6),
            median_ms=round(statistics.median(time_runtime(runtime, one, repeats=repeats)), 3),
            median_ms_fp32=round(fp32_ms, 3),
            test_images=len(test), calibration_images=calibrated, weight_type=weight_type,
        ))
    return TrialResult(admissions, models)
