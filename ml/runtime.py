"""Ways to run a trained model for inference, each checked against eager PyTorch before it is used.

`choose_runtime` builds every candidate (eager, channels-last, ONNX Runtime, `torch.compile`, dynamic
int8), checks that its probabilities stay within a tolerance of eager on example inputs, times it, and
returns the fastest one that passed together with the trials (what each cost, how far it was off,
why it was refused). Approximate runtimes (int8) are only admitted by an accuracy check the caller
provides, because 1e-4 agreement is not their promise.
"""

from __future__ import annotations

import copy
import io
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ml.gpu_runtimes import GPU_APPROXIMATE_RUNTIMES, GPU_RUNTIMES, build_gpu_runtime

log = logging.getLogger(__name__)

EXACT_RUNTIMES = ("eager", "channels_last", "onnxruntime", "compile")
APPROXIMATE_RUNTIMES = ("int8_dynamic",)
DEFAULT_CANDIDATES = ("eager", "channels_last", "onnxruntime")


@dataclass
class Runtime:
    """A callable from a preprocessed (B, C, S, S) batch to what the module returns: logits (B, L) for a
    model, a tuple of tensors for a Grad-CAM trunk (`ml.explain.split`); on the CPU or model device."""

    name: str
    run: Callable[[torch.Tensor], Any]

    def __call__(self, batch: torch.Tensor) -> Any:
        return self.run(batch)


@dataclass
class Trial:
    name: str
    accepted: bool
    median_ms: float | None = None
    max_abs_diff: float | None = None
    build_s: float | None = None
    reason: str = ""


@dataclass
class Choice:
    runtime: Runtime
    trials: list[Trial] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.runtime.name

    def summary(self) -> dict[str, object]:
        return {"runtime": self.name, "trials": [t.__dict__ for t in self.trials]}


def build_runtime(name: str, model: nn.Module, example: torch.Tensor, *, threads: int | None = None) -> Runtime:
    """Build runtime `name` for `model` (in eval mode; never modified: runtimes that change layout or
    weights work on a copy)."""
    model = model.eval()
    if name == "eager":
        return Runtime(name, _no_grad(model))
    if name == "channels_last":
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        return Runtime(name, _no_grad(lambda x: cl(x.contiguous(memory_format=torch.channels_last))))
    if name == "compile":
        compiled = torch.compile(copy.deepcopy(model), dynamic=True)
        return Runtime(name, _no_grad(compiled))
    if name == "int8_dynamic":
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao (not installed)
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu(), {nn.Linear},
                                                               dtype=torch.qint8)
        return Runtime(name, _no_grad(quantized))
    if name == "onnxruntime":
        return _onnxruntime(model, example, threads)
    if name in GPU_RUNTIMES:  # CUDA devices: ml.gpu_runtimes (RuntimeUnavailable, with its reason, elsewhere)
        return Runtime(name, build_gpu_runtime(name, model, example))
    raise ValueError(f"unknown runtime '{name}'; known: {', '.join(EXACT_RUNTIMES + APPROXIMATE_RUNTIMES + GPU_RUNTIMES)}")


def _no_grad(fn: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode():
            return fn(x)

    return run


def _onnxruntime(model: nn.Module, example: torch.Tensor, threads: int | None) -> Runtime:
    """The module exported to ONNX and run by ONNX Runtime; a module returning a tuple gives a tuple."""
    return onnx_runtime("onnxruntime", export_onnx(model, example), threads)


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """`model` (a copy, on the CPU, in eval mode) as ONNX: input `x`; output `logits`, or `out0`, `out1`, ...
    when it returns a tuple; the batch axis dynamic."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        sample = cpu_model(example.cpu())
    names = [f"out{i}" for i in range(len(sample))] if isinstance(sample, tuple) else ["logits"]
    # The TorchScript exporter is deprecated, but the torch.export-based one took 59 s instead of 6 s for
    # DenseNet-121 here, and export happens when a model is loaded; both gave the same outputs (< 1e-6).
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cpu_model, (example.cpu(),), buf, input_names=["x"], output_names=names,
                          dynamic_axes={name: {0: "batch"} for name in ["x", *names]}, dynamo=False)
    return buf.getvalue()


def onnx_runtime(name: str, onnx: bytes, threads: int | None = None) -> Runtime:
    """A `Runtime` named `name` running an ONNX model (input `x`) with ONNX Runtime on the CPU: a tensor out,
    or a tuple of them for a model exported from a module that returns a tuple (outputs `out0`, `out1`, ...:
    `export_onnx`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    several = session.get_outputs()[0].name == "out0"

    def run(x: torch.Tensor) -> Any:
        outputs = [torch.from_numpy(o) for o in session.run(None, {"x": x.detach().cpu().numpy()})]
        return tuple(outputs) if several else outputs[0]

    return Runtime(name, run)


def openvino_runtime(name: str, onnx: bytes, threads: int | None = None) -> Runtime:
    """A `Runtime` named `name` running an ONNX model (input `x`, one output) with OpenVINO's CPU plugin: its
    own kernels, which run a QDQ int8 model in int8 (`ml.quantize`), fp32 computed in fp32 (no bf16 hint),
    one stream for the latency of one request. An infer request per calling thread (they are not
    thread-safe; the compiled model is shared)."""
    import threading

    import numpy as np
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(onnx), "CPU", {
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.output(0)
    local = threading.local()

    def run(x: torch.Tensor) -> torch.Tensor:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        result = request.infer({0: x.detach().cpu().numpy()})[output]
        return torch.from_numpy(np.array(result, dtype=np.float32))

    return Runtime(name, run)


def time_runtime(runtime: Runtime, batch: torch.Tensor, *, repeats: int = 10, warmup: int = 2) -> list[float]:
    """Milliseconds per call, after `warmup` calls."""
    for _ in range(warmup):
        runtime(batch)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        runtime(batch)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def choose_runtime(
    model: nn.Module,
    examples: Sequence[torch.Tensor],
    to_probabilities: Callable[[torch.Tensor], torch.Tensor],
    *,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    tolerance: float = 1e-4,
    repeats: int = 10,
    threads: int | None = None,
    accuracy_check: Callable[[Runtime], tuple[bool, str]] | None = None,
) -> Choice:
    """The fastest candidate whose probabilities stay within `tolerance` of eager on every example
    (approximate runtimes must pass `accuracy_check` instead). Timed on the first example."""
    model = model.eval()
    eager = build_runtime("eager", model, examples[0])
    references = [to_probabilities(eager(x)).float() for x in examples]
    trials: list[Trial] = []
    runtimes: dict[str, Runtime] = {}
    for name in dict.fromkeys(["eager", *candidates]):
        started = time.perf_counter()
        try:
            runtime = eager if name == "eager" else build_runtime(name, model, examples[0], threads=threads)
            diffs = [float((to_probabilities(runtime(x)).float() - ref).abs().max()) for x, ref in
                     zip(examples, references, strict=True)]
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot build is refused, not fatal
            trials.append(Trial(name, False, reason=f"{type(exc).__name__}: {str(exc)[:200]}"))
            log.info("runtime %s refused: %s", name, exc)
            continue
        build_s = time.perf_counter() - started
        diff = max(diffs)
        if name in APPROXIMATE_RUNTIMES or name in GPU_APPROXIMATE_RUNTIMES:
            ok, reason = accuracy_check(runtime) if accuracy_check else (False, "no accuracy check given")
        else:
            ok = name == "eager" or diff <= tolerance  # eager is the reference
            reason = "" if ok else f"probabilities differ from eager by {diff:.2e} > {tolerance:.0e}"
        median = statistics.median(time_runtime(runtime, examples[0], repeats=repeats)) if ok else None
        trials.append(Trial(name, ok, median, diff, build_s, reason))
        if ok:
            runtimes[name] = runtime
    best = min((t for t in trials if t.accepted), key=lambda t: t.median_ms or float("inf"))
    log.info("runtime %s chosen (%s)", best.name, ", ".join(f"{t.name} {t.median_ms}" for t in trials))
    return Choice(runtimes[best.name], trials)


def example_inputs(shape: tuple[int, int, int], batch_sizes: Sequence[int] = (1, 3), seed: int = 0) -> list[torch.Tensor]:
    """Deterministic normalised-range inputs of several batch sizes (checks dynamic batch support)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn((b, *shape), generator=generator) for b in batch_sizes]

