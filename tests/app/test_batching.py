"""The micro-batcher on its own: what it gathers, what it refuses, what a failure does (no model, no server);
then the predictor's idle fast path with a real model, registry and inference pool (no server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from app.serving.batching import MicroBatcher
from app.serving.errors import Overloaded
from app.serving.inputs import Upload
from app.serving.metrics import ServiceMetrics
from app.serving.predictor import Predictor
from app.settings import AppSettings
from tests.app.live_server import REPO_ROOT, Registry, zoo_checkpoint

SAMPLES = sorted((REPO_ROOT / "data" / "samples").glob("*.*"))


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


# -- an idle model's fast path: one job for the whole request --------------------------------------------


def test_a_request_is_alone_only_while_nothing_else_is_admitted_waiting_or_running():
    forward = Recorder()

    async def main():
        batcher = MicroBatcher(forward, max_size=4, max_wait_s=0.01, queue_limit=64)
        with batcher.ticket(2) as first:
            assert first.alone
            with batcher.ticket(1) as second:  # another request is decoding
                assert not first.alone and not second.alone
                with pytest.raises(RuntimeError, match="idle"):
                    await second.run_alone(lambda: asyncio.sleep(0))
            assert first.alone
        running = asyncio.create_task(request(batcher, [1.0]))
        while not forward.running:  # until its batch is in its forward pass (a condition, not a guess)
            await asyncio.sleep(0)
        with batcher.ticket(1) as third:
            assert not third.alone
        await running
        with batcher.ticket(1) as fourth:
            assert fourth.alone

    run(main())


def test_a_request_running_alone_holds_a_place_so_later_requests_wait_and_batch_among_themselves():
    forward = Recorder()
    order: list[str] = []

    async def main():
        batcher = MicroBatcher(forward, max_size=4, max_wait_s=1.0, queue_limit=64, concurrency=1)

        async def lone_job() -> str:
            await asyncio.sleep(0.05)
            order.append("alone finished")
            return "done"

        async def alone() -> str:
            with batcher.ticket(1) as ticket:
                assert ticket.alone
                return await ticket.run_alone(lone_job)

        async def later(value: float) -> np.ndarray:
            probs = await request(batcher, [value], decode_s=0.001 * value)
            order.append(f"batched {value:.0f}")
            return probs

        results = await asyncio.gather(alone(), *(later(float(i)) for i in range(1, 4)))
        return results, batcher.stats.sizes

    (done, *probs), sizes = run(main())
    assert done == "done"
    assert [float(p[0, 0]) for p in probs] == [1.0, 2.0, 3.0]
    assert forward.sizes == [3]  # the three later requests share one batch, after the lone one's place frees
    assert order[0] == "alone finished"
    assert sizes == {1: 1, 3: 1}  # the lone request counts as a batch of its own


def test_an_idle_model_answers_in_one_pool_job_what_the_batched_path_answers(tmp_path: Path):
    registry = Registry.create(tmp_path)
    registry.publish(zoo_checkpoint("simple_cnn", tmp_path), "small")
    settings = AppSettings(database_url=registry.url, artifact_root=str(registry.store.root),
                           default_model="small", runtime_candidates=[], batch_max_size=4, batch_max_wait_ms=1000)
    uploads = [Upload(p.name, p.read_bytes()) for p in SAMPLES]
    jobs: list[str] = []

    async def main():
        predictor = Predictor(settings=settings, db=registry.db, artifacts=registry.store,
                              metrics=ServiceMetrics())
        await predictor.start()
        try:
            served = (await predictor.get("small")).served
            pool_run = predictor.pool.run

            async def recording_run(fn, *args, **kwargs):
                jobs.append(fn.__name__)
                return await pool_run(fn, *args, **kwargs)

            predictor.pool.run = recording_run
            alone = [await predictor.predict(served, [u]) for u in uploads]  # one at a time: always idle
            alone_jobs = jobs[:]
            jobs.clear()
            # at once: the first finds the model idle, the others decode meanwhile and share batches
            together = await asyncio.gather(*(predictor.predict(served, [u]) for u in uploads * 3))
            assert served.batcher is not None
            return alone, alone_jobs, together, dict(served.batcher.stats.sizes)
        finally:
            await predictor.close()

    alone, alone_jobs, together, sizes = asyncio.run(asyncio.wait_for(main(), 120))
    registry.db.dispose()
    assert alone_jobs == ["_prepare_and_forward"] * len(uploads)
    assert jobs.count("_prepare_and_forward") == 1 and jobs.count("_forward") < len(uploads) * 3 - 1
    assert max(sizes) > 1  # concurrent requests still batched together
    assert sum(size * n for size, n in sizes.items()) == len(uploads) * 4
    for i, [result] in enumerate(together):
        [reference] = alone[i % len(uploads)]
        assert result.prepared.name == reference.prepared.name
        got, want = result.prediction.probabilities, reference.prediction.probabilities
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-5 for k in want), (got, want)
