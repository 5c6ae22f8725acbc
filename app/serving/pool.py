"""The inference pool: a fixed number of threads for decoding, preprocessing, forward passes and CAMs.

Work submitted here never runs on the event loop, and never more of it at once than `workers`, so a burst of
requests queues instead of oversubscribing the cores. `pending` counts what is queued or running (the
overload limit of a later change reads it). Torch's own intra-op threads are set once per process.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import torch

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_torch_threads(threads: int | None, workers: int = 1) -> int:
    """Set torch's intra-op threads and return the number used. By default the available cores are divided
    among the pool's `workers`, so that workers running at once never ask for more threads than cores: on 2
    shared cores, 2 workers with 2 threads each made simple_cnn's 28 px forward pass take 160 ms instead of
    1.4 ms (every operator's threads wait for the slowest, which the other work has descheduled), and with
    one thread each, one worker decodes the next upload while the other runs the model."""
    count = threads or max(1, available_cores() // workers)
    torch.set_num_threads(count)
    return count


class InferencePool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pending = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cxr-infer")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on a pool thread and wait for it without blocking the event loop."""
        self.pending += 1
        try:
            return await asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        """Finish what runs, drop what waits."""
        self._executor.shutdown(wait=True, cancel_futures=True)
