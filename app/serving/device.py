"""Where the API serves its models (`CXR_SERVE_DEVICE`), and the batching and runtime trial that suit it.

On a GPU a forward pass of 32 images costs little more than one, so micro-batches are larger and wait less
(`gpu_batch_max_size`, `gpu_batch_max_wait_ms`), and the runtime trial tries what the GPU offers
(`gpu_runtime_candidates`: channels-last, CUDA graphs, autocast, ONNX Runtime's TensorRT and CUDA providers;
`ml.gpu_runtimes`), each admitted by the same rule as on the CPU: exact runtimes within 1e-4 of eager's
probabilities, approximate ones (autocast) only through the accuracy check. On the CPU nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.settings import AppSettings
from ml.gpu_runtimes import GPU_RUNTIMES, gpu_runtime_status
from ml.runtime import APPROXIMATE_RUNTIMES, EXACT_RUNTIMES

KNOWN = (*EXACT_RUNTIMES, *APPROXIMATE_RUNTIMES, *GPU_RUNTIMES)


@dataclass(frozen=True)
class ServingPlan:
    device: torch.device
    batch_max_size: int
    batch_max_wait_ms: float
    candidates: list[str]  # runtimes the trial builds and times against eager
    skipped: dict[str, str]  # candidates not tried here, and why

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


class ServeDeviceUnavailable(RuntimeError):
    """CXR_SERVE_DEVICE=cuda on a machine without a CUDA device."""


def serving_plan(settings: AppSettings) -> ServingPlan:
    """The device, batch size and wait, and runtime candidates for this process's settings and machine."""
    wanted = settings.serve_device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ServeDeviceUnavailable("CXR_SERVE_DEVICE=cuda but no CUDA device is available (use auto or cpu)")
    cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    names = settings.gpu_runtime_candidates if cuda else settings.runtime_candidates
    status = gpu_runtime_status(device)
    candidates, skipped = [], {}
    for name in dict.fromkeys(names):
        if name == "eager":
            continue
        if name in GPU_RUNTIMES and status[name] is not None:
            skipped[name] = status[name]
        elif name in KNOWN:
            candidates.append(name)  # choose_runtime admits or refuses it by its rule
        else:
            skipped[name] = "unknown runtime"
    if cuda:
        return ServingPlan(device, settings.gpu_batch_max_size, settings.gpu_batch_max_wait_ms, candidates, skipped)
    return ServingPlan(device, settings.batch_max_size, settings.batch_max_wait_ms, candidates, skipped)
