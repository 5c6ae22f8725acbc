"""The micro-batcher on its own: what it gathers, what it refuses, what a failure does (no model, no server)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from app.serving.batching import MicroBatcher
from app.serving.errors import Overloaded


class Recorder:
    """A forward pass that answers each input's first value, and records the batch sizes it saw."""

    def __init__(self, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.fail = fail
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, inputs: list[torch.Tensor]) -> tuple[np.ndarray, float]:
        self.sizes.append(len(inputs))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        if self.fail:
            raise RuntimeError("forward failed")
        return np.array([[float(x.flatten()[0])] for x in inputs]), 1.0


def images(*values: float) -> list[torch.Tensor]:
    return [torch.full((1, 2, 2), v) for v in values]


async def request(batcher: MicroBatcher, values: list[float], decode_s: float = 0.0) -> np.ndarray:
    """Like a route: take a ticket, 'decode', submit."""
    with batcher.ticket(len(values)) as ticket:
        await asyncio.sleep(decode_s)
        probs, _ = await ticket.submit(images(*values))
        return probs


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))  # a guard against hanging, not a timing


def test_requests_decoding_together_share_one_batch_and_get_their_own_rows():
    forward = Recorder()

    async def main():
        batcher = MicroBatcher(forward, max_size=16, max_wait_s=5.0, queue_limit=64)
        # staggered "decodes": each later request is still decoding when the first submits
        return await asyncio.gather(*(request(batcher, [i, i + 0.5], decode_s=0.002 * i) for i in range(6)))

    results = run(main())
    assert forward.sizes == [12]
    for i, probs in enumerate(results):
        assert probs[:, 0].tolist() == [i, i + 0.5]


def test_a_lone_request_does_not_wait_for_company():
    forward = Recorder()

    async def main():
        batcher = MicroBatcher(forward, max_size=16, max_wait_s=60.0, queue_limit=64)
        return await request(batcher, [3.0])  # with nobody decoding, it runs at once (else: 60 s)

    assert run(main())[:, 0].tolist() == [3.0]
    assert forward.sizes == [1]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_batches_hold_at_most_max_size_and_at_most_concurrency_run_at_once(concurrency):
    forward = Recorder()

    async def main():
        batcher = MicroBatcher(forward, max_size=4, max_wait_s=0.05, queue_limit=64, concurrency=concurrency)
        return await asyncio.gather(*(request(batcher, [float(i)]) for i in range(10)))

    results = run(main())
    assert [float(p[0, 0]) for p in results] == [float(i) for i in range(10)]
    assert sum(forward.sizes) == 10 and max(forward.sizes) <= 4 and len(forward.sizes) >= 3
    assert forward.most_at_once == concurrency


def test_without_batching_each_request_runs_alone_and_concurrently():
    forward = Recorder()

    async def main():
        batcher = MicroBatcher(forward, max_size=1, max_wait_s=0.05, queue_limit=64, concurrency=3)
        return await asyncio.gather(*(request(batcher, [float(i)]) for i in range(5)))

    run(main())
    assert forward.sizes == [1] * 5
    assert forward.most_at_once == 3


def test_a_full_queue_refuses_with_retry_after_and_a_left_ticket_frees_its_place():
    async def main():
        batcher = MicroBatcher(Recorder(), max_size=8, max_wait_s=0.01, queue_limit=3)
        held = batcher.ticket(2)
        with pytest.raises(Overloaded) as refused:
            batcher.ticket(2)
        assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
        assert "limit 3" in str(refused.value)
        held.__exit__(None, None, None)  # a request that failed to decode leaves the queue
        assert batcher.queued == 0
        with batcher.ticket(3):
            pass
        assert batcher.stats.refused == 1

    run(main())


def test_a_failed_forward_fails_every_request_of_its_batch_and_the_next_batch_runs():
    forward = Recorder(fail=True)

    async def main():
        batcher = MicroBatcher(forward, max_size=8, max_wait_s=1.0, queue_limit=64)
        outcomes = await asyncio.gather(*(request(batcher, [1.0], decode_s=0.001 * i) for i in range(3)),
                                        return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        forward.fail = False
        assert (await request(batcher, [2.0]))[0, 0] == 2.0
        assert batcher.queued == 0

    run(main())
