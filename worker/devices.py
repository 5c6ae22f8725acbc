"""Which device a job uses, as a worker reports it: 'cpu', or 'cuda (<GPU name>)'."""

from __future__ import annotations

from registry.jobs import get_job
from worker.context import WorkerContext


def describe_device(device: str) -> str:
    """`device` as `fit` names it ('cpu', 'cuda'), with the GPU's name added."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(0)})"
    return device


def expected_device(ctx: WorkerContext, job_id: int) -> str:
    """The device the job will use (its `device` parameter, else the GPU when there is one), said at
    claim time; the training loop confirms it when it starts. The pools a worker uses never fork, so
    touching CUDA here is safe."""
    import torch

    with ctx.db.session() as s:
        requested = str(get_job(s, job_id=job_id).params.get("device", "auto"))
    cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    return describe_device("cuda" if cuda else "cpu")
