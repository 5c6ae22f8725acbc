"""The worker process's settings: read once from `CXR_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from registry.settings import RegistrySettings


class WorkerSettings(RegistrySettings):
    lease_seconds: float = Field(
        120.0, gt=0, description="a claimed job's lease; a worker silent this long is presumed dead"
    )
    heartbeat_seconds: float = Field(15.0, gt=0, description="how often a running job's lease is renewed")
    cancel_poll_seconds: float = Field(
        0.5, gt=0, le=5, description="how often a running job's cancel flag is read (one cheap query)"
    )
    sweep_seconds: float = Field(
        60.0, gt=0, description="how often a worker sends again the jobs whose worker died or that were never sent"
    )
    unsent_after_seconds: float = Field(
        60.0, ge=0, description="a queued job without a sent task is re-sent once it is this old"
    )
    progress_seconds: float = Field(1.0, ge=0, description="least time between two progress writes of a job")
    worker_pool: Literal["solo", "threads"] = Field(
        "solo", description="Celery pool; never a forking pool, so CUDA is never initialised before a fork"
    )
    worker_concurrency: int = Field(1, ge=1, le=64, description="jobs a worker runs at once (threads pool only)")
    worker_log_level: str = Field("INFO", description="the worker's log level")
    # scale (issue 19): data-parallel jobs and the prepared dataset cache
    devices: int = Field(
        1, ge=1, le=64, description="devices (GPUs; processes on a CPU worker) this worker owns: a job's `devices` "
                                    "parameter may ask up to this many, trained one process per device"
    )
    ddp_timeout_seconds: float = Field(
        1800.0, gt=0, description="bound on every cross-device wait of a data-parallel job (a hung rank fails it)"
    )
    ddp_restarts: int = Field(
        1, ge=0, le=10, description="times a data-parallel job whose rank died restarts from its last checkpoint"
    )
    data_cache: bool = Field(
        True, description="read training images from the prepared cache under <artifact root>/prepared (written "
                          "on first use; `cxr data prepare` builds it ahead); false: decode the source files"
    )

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> WorkerSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(f"heartbeat_seconds ({self.heartbeat_seconds}) must be at most half of lease_seconds "
                             f"({self.lease_seconds}), or a slow heartbeat loses the lease")
        return self
