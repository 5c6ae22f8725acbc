"""Inference runtimes a CUDA device offers, as candidates for `ml.runtime.choose_runtime`.

- `cuda_amp`: eager under autocast (bf16 where the GPU supports it, else fp16). Approximate: its
  probabilities differ from fp32 by more than 1e-4, so the trial admits it only through an accuracy check.
  On a GPU server a bf16 variant that `cxr quantize` admitted (AUROC within its bound, the rule the CPU's
  reduced-precision variants answer to) runs as bf16 autocast on the device (`cuda_autocast`).
- `cuda_graphs`: the fp32 model captured as a CUDA graph per batch size (captured on first use of a size,
  up to `MAX_GRAPHS` sizes; other sizes run eager), replayed with the input copied into the captured
  buffer: the same kernels without the launch overhead that dominates small batches.
- `onnxruntime_cuda`, `onnxruntime_tensorrt`: the ONNX export run by ONNX Runtime's CUDA or TensorRT
  execution provider, when the installed onnxruntime has it (the `onnxruntime-gpu` wheel).

`gpu_runtime_status()` says which of these can be built here and, for the others, why not; building one
that cannot run raises `RuntimeUnavailable`, which the trial records as the candidate's refusal reason,
so on a machine without CUDA every GPU candidate is listed as skipped, with its reason.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

GPU_EXACT_RUNTIMES = ("cuda_graphs", "onnxruntime_cuda", "onnxruntime_tensorrt")
GPU_APPROXIMATE_RUNTIMES = ("cuda_amp",)
GPU_RUNTIMES = GPU_EXACT_RUNTIMES + GPU_APPROXIMATE_RUNTIMES
MAX_GRAPHS = 8
ORT_PROVIDERS = {"onnxruntime_cuda": "CUDAExecutionProvider", "onnxruntime_tensorrt": "TensorrtExecutionProvider"}


class RuntimeUnavailable(RuntimeError):
    """A runtime that cannot be built on this machine (no CUDA, no such execution provider)."""


def gpu_runtime_status(device: torch.device | str = "cuda") -> dict[str, str | None]:
    """For each GPU runtime: None when it can be built for `device`, else why it cannot."""
    device = torch.device(device)
    out: dict[str, str | None] = {}
    cuda = None
    if device.type != "cuda":
        cuda = f"the model is served on '{device.type}', not a CUDA device"
    elif not torch.cuda.is_available():
        cuda = "no CUDA device is available"
    for name in GPU_RUNTIMES:
        out[name] = cuda
        if cuda is None and name in ORT_PROVIDERS:
            out[name] = _ort_missing(ORT_PROVIDERS[name])
    return out


def _ort_missing(provider: str) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if provider not in ort.get_available_providers():
        return f"onnxruntime has no {provider} (install onnxruntime-gpu{' with TensorRT' if 'Tensorrt' in provider else ''})"
    return None


def build_gpu_runtime(name: str, model: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """The callable for GPU runtime `name` (raises `RuntimeUnavailable` when it cannot run here)."""
    reason = gpu_runtime_status(example.device).get(name, f"unknown GPU runtime '{name}'")
    if reason is not None:
        raise RuntimeUnavailable(reason)
    if name == "cuda_amp":
        return cuda_autocast(model, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if name == "cuda_graphs":
        return _CudaGraphs(model)
    return _ort_gpu(model, example, ORT_PROVIDERS[name])


def cuda_autocast(model: nn.Module, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model under CUDA autocast in `dtype`, logits as float32 (the GPU form of a bf16 variant that
    `cxr quantize` admitted: app.serving.reduced)."""
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("no CUDA device is available")
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise RuntimeUnavailable("this GPU has no bfloat16")

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
            return model(x).float()

    return run


class _CudaGraphs:
    """One captured graph per input shape; replays are serialised (a graph has one input buffer)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self.lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> Any:
        key = tuple(x.shape)
        with self.lock, torch.inference_mode():
            if key not in self.graphs:
                if len(self.graphs) >= MAX_GRAPHS:
                    return self.model(x)
                self.graphs[key] = self._capture(x)
            graph, static_in, static_out = self.graphs[key]
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up on a side stream, as capture requires
                self.model(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out


def _ort_gpu(model: nn.Module, example: torch.Tensor, provider: str) -> Callable[[torch.Tensor], Any]:
    import onnxruntime as ort

    buf = io.BytesIO()
    cpu_model = copy.deepcopy(model).cpu().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(cpu_model, (example.cpu(),), buf, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    providers = [provider, "CUDAExecutionProvider"] if provider != "CUDAExecutionProvider" else [provider]
    session = ort.InferenceSession(buf.getvalue(), providers=providers)
    if provider not in session.get_providers():
        raise RuntimeUnavailable(f"onnxruntime could not start {provider} (it fell back to {session.get_providers()})")

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"x": x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    return run
