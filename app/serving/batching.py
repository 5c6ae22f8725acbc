"""Micro-batching: concurrent requests for one model version share forward passes.

Each served model has a `MicroBatcher`. A request takes a `Ticket` for its images before it decodes them
(refused with `Overloaded` when the model's queue is full), then submits its preprocessed batch. A dispatcher
task gathers the waiting submissions into one batch of at most `max_size` images and runs it on the
inference pool; the probabilities go back to each request in its own rows.

How long to wait for company: a batch waits (at most `max_wait` seconds after its first image arrived) only
while requests holding tickets are still decoding, so a lone request is never delayed, and under load the
next batch gathers while the previous one runs. At most `concurrency` batches of a model run at once (the
inference pool's workers: each has its share of the cores); without batching (`max_size == 1`) each
submission is a batch of its own, as before batching existed, and the queue bound still holds.

A request that finds its model idle (nothing else admitted, waiting or running) has no one to batch with:
`Ticket.run_alone` runs its whole work (decode, preprocess and forward) as one job, a batch of its own that
takes one of the `concurrency` places. That is one hop to the pool instead of three (decode, then the
dispatcher, then the forward pass): ~1-2 ms of a 28 px model's request on 2 busy cores.

On a CPU, batching mostly saves per-request overhead: DenseNet-121 at 224 px cost 48 ms per image through
ONNX Runtime at batch 1 and 52 ms at batch 16 on one core, so a batch per core at once keeps both cores
busy where one batch at a time with both cores' threads would not (see `app.serving.pool`).

The idea is that of dynamic batching in inference servers (Triton's `max_queue_delay`, TorchServe's
`batch_size`/`max_batch_delay`), written afresh for one asyncio loop: all state here is touched only by
the event loop's thread, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self, TypeVar

import numpy as np
import torch

from app.serving.errors import Overloaded

log = logging.getLogger(__name__)

# B model inputs -> probabilities (B, L) and the milliseconds the forward pass took
Forward = Callable[[list[torch.Tensor]], Awaitable[tuple[np.ndarray, float]]]
Result = tuple[np.ndarray, float]
T = TypeVar("T")


@dataclass
class _Waiting:
    inputs: list[torch.Tensor]
    future: asyncio.Future[Result]
    arrived: float


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    refused: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it

    def record(self, images: int) -> None:
        """Count a forward pass of `images` images."""
        self.batches += 1
        self.images += images
        self.sizes[images] = self.sizes.get(images, 0) + 1


class MicroBatcher:
    def __init__(self, forward: Forward, *, max_size: int, max_wait_s: float, queue_limit: int,
                 concurrency: int = 1, name: str = "model",
                 on_wait: Callable[[float], None] | None = None) -> None:
        self.forward, self.name = forward, name
        self.on_wait = on_wait  # told each request's seconds from joining the queue to its forward pass
        self.max_size, self.max_wait_s, self.queue_limit = max_size, max_wait_s, queue_limit
        self.stats = BatchStats()
        self._incoming = 0  # images of tickets not yet submitted (being read or decoded)
        self._waiting: deque[_Waiting] = deque()
        self._waiting_images = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._changed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._alone = 0  # requests running on their own (`Ticket.run_alone`)
        self._last_batch_s = 0.0

    @property
    def enabled(self) -> bool:
        return self.max_size > 1

    @property
    def queued(self) -> int:
        """Images admitted and not yet in a running forward pass."""
        return self._incoming + self._waiting_images

    def ticket(self, images: int) -> Ticket:
        """Admit `images` into the queue, or refuse them with `Overloaded` when it is full."""
        if self.queued + images > self.queue_limit:
            self.stats.refused += 1
            raise Overloaded(
                f"model {self.name} has {self.queued} images waiting (limit {self.queue_limit}); try again "
                "shortly",
                retry_after=self._retry_after(),
            )
        self._incoming += images
        return Ticket(self, images)

    def _idle_but(self, images: int) -> bool:
        """Whether nothing but a ticket of `images` is admitted, waiting or running."""
        return self._incoming == images and not self._waiting and not self._running and not self._alone

    async def _run_alone(self, images: int, job: Callable[[], Awaitable[T]]) -> T:
        """Run `job` (a request's decode and forward pass) as a batch of its own of `images` images."""
        await self._slots.acquire()  # free: the model is idle, so this does not wait
        if self.on_wait is not None:
            self.on_wait(0.0)
        self._alone += 1
        try:
            result = await job()
        finally:
            self._alone -= 1
            self._slots.release()
        self.stats.record(images)
        return result

    def _retry_after(self) -> int:
        """Seconds until the queue should have drained: batches ahead of it times the last batch's time."""
        batches = math.ceil(self.queued / max(self.max_size, 1))
        return max(1, math.ceil(batches * self._last_batch_s))

    def _release(self, images: int) -> None:
        self._incoming -= images
        self._changed.set()

    async def _submit(self, inputs: list[torch.Tensor]) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(inputs, future, asyncio.get_running_loop().time()))
        self._waiting_images += len(inputs)
        self._changed.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name=f"cxr-batch-{self.name}")
        return await future

    async def _dispatch(self) -> None:
        while self._waiting:
            await self._slots.acquire()
            batch = await self._gather()
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self) -> list[_Waiting]:
        """Wait for decoding requests to join, then take at most `max_size` images (a request is never
        split; one larger than `max_size` runs alone)."""
        loop = asyncio.get_running_loop()
        deadline = self._waiting[0].arrived + self.max_wait_s
        while self.enabled and self._waiting_images < self.max_size and self._incoming > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        batch = [self._waiting.popleft()]
        size = len(batch[0].inputs)
        while self._waiting and size + len(self._waiting[0].inputs) <= self.max_size:
            size += len(self._waiting[0].inputs)
            batch.append(self._waiting.popleft())
        self._waiting_images -= size
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self.on_wait is not None:
            for waiting in batch:
                self.on_wait(started - waiting.arrived)
        try:
            probs, ms = await self.forward([x for waiting in batch for x in waiting.inputs])
        except BaseException as exc:  # every request of the batch gets the failure
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            row = 0
            for waiting in batch:
                n = len(waiting.inputs)
                if not waiting.future.done():
                    waiting.future.set_result((probs[row:row + n], ms))
                row += n
            self.stats.record(row)
        finally:
            self._last_batch_s = loop.time() - started
            self._slots.release()


class Ticket:
    """A request's place in a model's queue: submit its inputs once, or leave (its images are released)."""

    def __init__(self, batcher: MicroBatcher, images: int) -> None:
        self._batcher, self._images = batcher, images

    @property
    def alone(self) -> bool:
        """Whether the model has nothing else to do: no other request admitted, waiting or running, so this
        one has nobody to share a batch with."""
        return self._images > 0 and self._batcher._idle_but(self._images)

    async def run_alone(self, job: Callable[[], Awaitable[T]]) -> T:
        """Run the request's whole work as one batch of its own, in place of `submit` (only when `alone`).
        Its images leave the queue as it starts, as a batch's do when its forward pass starts; requests
        arriving meanwhile batch among themselves."""
        images = self._images
        if not self.alone:
            raise RuntimeError("run_alone needs an idle model: submit the inputs instead")
        self._leave()
        return await self._batcher._run_alone(images, job)

    async def submit(self, inputs: list[torch.Tensor]) -> Result:
        """Probabilities (B, L) for B model inputs, computed in a batch with other requests', and the
        milliseconds that batch's forward pass took."""
        self._leave()
        return await self._batcher._submit(inputs)

    def _leave(self) -> None:
        if self._images:
            self._batcher._release(self._images)
            self._images = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._leave()
