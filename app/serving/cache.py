"""The models a process serves: references resolved to registry versions, loaded into a small LRU, kept current.

A reference (`name`, `name@alias`, `name:version`; a bare name means its `production` alias) maps to a model
version id, and ids map to loaded models (`ServedModel`) in an LRU of `model_cache_size`. A version loads by
reading its checkpoint through the artifact store with the sha256 the registry recorded, so a changed file is
refused; it is warmed with one forward pass and given its `MicroBatcher`, whose batches run on the inference
pool. Once loaded, a background trial chooses its runtime (`ServedModel.choose_runtime`), one trial at a time
and never before start-up and the first requests are served.

Aliases are re-read every `alias_refresh_seconds` by a background task. When a served alias has moved, the new
version is loaded (and warmed) before the alias is switched to it, so no request waits for the load, and a
version that fails to load leaves the old one serving. Loaded models are never changed: a request keeps the
object it started with, and eviction only drops the cache's reference.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import torch

from app.serving.batching import MicroBatcher
from app.serving.device import serving_plan
from app.serving.errors import InvalidInput, ModelUnavailable, ServingError
from app.serving.metrics import ServiceMetrics
from app.serving.pool import InferencePool
from app.serving.reduced import load_variants
from app.serving.served import RuntimeInfo, ServedModel
from app.settings import AppSettings
from ml.errors import ModelError
from ml.explain.split import TRACE_GUARD
from ml.inference import LoadedModel
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.errors import IntegrityFailure, NotFound
from registry.records import ModelVersionRecord
from registry.versions import ModelRef, aliases, get_model_version, parse_ref, resolve

log = logging.getLogger(__name__)
T = TypeVar("T")
REFUSED_RETRY_SECONDS = 60  # a version that failed to load is not tried again for an alias before this
TRIAL_DELAY_SECONDS = 2.0  # a runtime trial waits this long after the load: start-up and first requests go first


@dataclass(frozen=True)
class Resolved:
    served: ServedModel
    alias: str | None  # the alias the request went through (None for `name:version`)


class ModelCache:
    def __init__(self, *, settings: AppSettings, db: Database, artifacts: LocalArtifactStore,
                 metrics: ServiceMetrics, pool: InferencePool) -> None:
        self.settings, self.db, self.artifacts, self.metrics, self.pool = settings, db, artifacts, metrics, pool
        self.plan = serving_plan(settings)  # device, batching and runtime candidates (app.serving.device)
        log.info("serving on %s: batches of up to %d, waiting %.1f ms; runtime candidates %s%s", self.plan.device,
                 self.plan.batch_max_size, self.plan.batch_max_wait_ms, self.plan.candidates or "none",
                 "".join(f"; {name} skipped: {why}" for name, why in self.plan.skipped.items()))
        self._refs: dict[str, int] = {}  # "name@alias" / "name:version" -> model version id
        self._cache: OrderedDict[int, ServedModel] = OrderedDict()
        self._loaded: dict[int, ServedModel] = {}  # a snapshot of the cache that threads may read
        self._loading: dict[int, asyncio.Task[ServedModel]] = {}
        self._warm_errors: dict[str, str] = {}  # warm reference -> why it is not loaded
        self._refused: dict[int, float] = {}  # version id an alias moved to -> when it failed to load
        self._refresher: asyncio.Task[None] | None = None
        self._choosing: set[asyncio.Task[None]] = set()  # background runtime trials
        self._trial_lock = asyncio.Lock()

    # -- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the default and warm models (a failure is logged, not raised) and start re-reading aliases."""
        for reference in self._warm_references():
            await self._warm(reference)
        self._refresher = asyncio.create_task(self._refresh_forever(), name="cxr-alias-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        for task in self._choosing:
            task.cancel()
        await asyncio.gather(*self._choosing, return_exceptions=True)

    def _warm_references(self) -> list[str]:
        return list(dict.fromkeys([self.settings.default_model, *self.settings.warm_models]))

    async def _warm(self, reference: str) -> None:
        try:
            resolved = await self.get(reference)
        except Exception as exc:
            # readiness is open to anyone: errors of our own say what is wrong, others only their type
            known = isinstance(exc, (ServingError, NotFound))
            self._warm_errors[reference] = str(exc) if known else f"{type(exc).__name__} (see the API log)"
            log.warning("model '%s' not loaded: %s", reference, exc)
        else:
            self._warm_errors.pop(reference, None)
            log.info("model '%s' ready: %s", reference, resolved.served.record.ref)

    def default_status(self) -> tuple[bool, str]:
        """Readiness: is the default model loaded, and if not, why."""
        reference = self.settings.default_model
        served = self._cache.get(self._refs.get(self._key(reference), -1))
        if served is not None:
            return True, f"{reference} -> {served.record.ref}"
        why = self._warm_errors.get(reference, "not loaded yet")
        return False, f"default model '{reference}' is not loaded: {why}"

    def loaded_versions(self) -> frozenset[int]:
        """Ids of the versions in memory (safe to call from any thread)."""
        return frozenset(self._loaded)

    def loaded_model(self, version_id: int) -> ServedModel | None:
        """The loaded model of a version id, if in memory (safe to call from any thread)."""
        return self._loaded.get(version_id)

    # -- models -----------------------------------------------------------------------------------------

    async def get(self, reference: str | None) -> Resolved:
        """The loaded model a reference names (default: the default model's production alias)."""
        ref = self._parse(reference or self.settings.default_model)
        key = str(ref)
        version_id = self._refs.get(key)
        if version_id is None:
            version_id = (await self._db(resolve, ref)).id
            served = await self._served(version_id)
            self._refs[key] = version_id
        else:
            served = await self._served(version_id)
        return Resolved(served, ref.alias)

    def _key(self, reference: str) -> str:
        return str(self._parse(reference))

    @staticmethod
    def _parse(reference: str) -> ModelRef:
        try:
            return parse_ref(reference)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_model_reference") from None

    async def _served(self, version_id: int) -> ServedModel:
        served = self._cache.get(version_id)
        if served is not None:
            self._cache.move_to_end(version_id)
            return served
        task = self._loading.get(version_id)
        if task is None:
            task = asyncio.create_task(self._load_into_cache(version_id), name=f"cxr-load-{version_id}")
            self._loading[version_id] = task
        return await asyncio.shield(task)  # a cancelled request does not cancel a load others wait for

    async def _load_into_cache(self, version_id: int) -> ServedModel:
        try:
            served = await anyio.to_thread.run_sync(self._load, version_id)
        finally:
            self._loading.pop(version_id, None)
        s = self.settings
        served.batcher = MicroBatcher(
            lambda resized: self.pool.run(served.timed_forward, resized), max_size=self.plan.batch_max_size,
            max_wait_s=self.plan.batch_max_wait_ms / 1000, queue_limit=s.inference_queue_limit,
            concurrency=self.pool.workers, name=served.record.ref,
            on_wait=self.metrics.queue_wait.labels(*served.metric_labels).observe,
        )
        self._cache[version_id] = served
        candidates = self.plan.candidates
        if candidates or served.variants:  # admitted reduced-precision variants are timed by the trial too
            served.runtime_info = RuntimeInfo(state="choosing")  # from now on, not once the thread starts
            task = asyncio.create_task(self._choose_runtime(served, candidates), name=f"cxr-runtime-{version_id}")
            self._choosing.add(task)
            task.add_done_callback(self._choosing.discard)
        else:
            served.runtime_info = RuntimeInfo(state="eager (no candidates)")
        while len(self._cache) > self.settings.model_cache_size:
            _, evicted = self._cache.popitem(last=False)
            log.info("evicted %s from the model cache", evicted.record.ref)
            self.metrics.model_loaded.remove(*evicted.metric_labels, evicted.record.architecture)
        self._loaded = dict(self._cache)
        self.metrics.models_loaded.set(len(self._cache))
        self.metrics.model_loaded.labels(*served.metric_labels, served.record.architecture).set(1)
        return served

    def _load(self, version_id: int) -> ServedModel:
        """Read, verify, build and warm one model version (blocking)."""
        with self.db.session() as session:
            record = get_model_version(session, version_id=version_id)
        start = time.perf_counter()
        try:
            loaded = self._build(record)
        except ModelUnavailable as exc:
            self.metrics.model_load_failures.labels(record.name, str(record.version), exc.code).inc()
            log.error("%s", exc)
            raise
        seconds = time.perf_counter() - start
        self.metrics.model_load.labels(record.name, str(record.version)).observe(seconds)
        log.info("loaded %s (%s) in %.2f s", record.ref, record.architecture, seconds)
        served = ServedModel(record, loaded, seconds, self.metrics)
        served.variants = load_variants(record, self.artifacts)
        return served

    def _build(self, record: ModelVersionRecord) -> LoadedModel:
        if record.checkpoint is None:
            raise ModelUnavailable(f"model {record.ref} has no checkpoint", code="checkpoint_missing")
        try:
            data = self.artifacts.read_bytes(record.checkpoint.uri, sha256=record.checkpoint.sha256)
            loaded = LoadedModel.from_checkpoint(data, device=str(self.plan.device))
        except IntegrityFailure as exc:
            raise ModelUnavailable(
                f"model {record.ref} is refused: {exc}", code="integrity_failure"
            ) from None
        except NotFound as exc:
            raise ModelUnavailable(
                f"model {record.ref} cannot be loaded: {exc}", code="checkpoint_missing"
            ) from None
        except ModelError as exc:
            raise ModelUnavailable(
                f"model {record.ref} cannot be loaded: {exc}", code="checkpoint_invalid"
            ) from None
        if loaded.labels != list(record.labels):
            raise ModelUnavailable(
                f"model {record.ref}: its checkpoint's labels {loaded.labels} differ from the "
                f"registry's {list(record.labels)}",
                code="checkpoint_invalid",
            )
        cfg = loaded.data_config
        with TRACE_GUARD.running():
            loaded.predict_tensor(torch.zeros(1, cfg.in_chans, cfg.input_size, cfg.input_size))  # warm-up pass
        return loaded

    async def _choose_runtime(self, served: ServedModel, candidates: list[str]) -> None:
        """On a thread of its own, not the pool: requests keep being served (eager) while it runs. One trial
        at a time, so loading several models does not crowd the cores with trials."""
        await asyncio.sleep(TRIAL_DELAY_SECONDS)
        async with self._trial_lock:
            await anyio.to_thread.run_sync(
                served.choose_runtime, candidates, torch.get_num_threads(), abandon_on_cancel=True
            )

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        """Run a registry query on a worker thread (the event loop never waits on the database)."""

        def query() -> T:
            with self.db.session() as session:
                return fn(session, *args)

        return await anyio.to_thread.run_sync(query)

    # -- alias refresh ----------------------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alias_refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("alias refresh failed; serving the models already loaded")
            else:
                self.metrics.alias_refreshes.inc()

    async def refresh(self) -> None:
        """Follow aliases that moved; load warm models that were missing at start-up."""
        current = await self._db(aliases)
        for key, version_id in list(self._refs.items()):
            if "@" not in key:
                continue
            target = current.get(key)
            if target is None:
                self._refs.pop(key, None)  # alias removed: the next request resolves (and gets 404)
            elif target != version_id:
                await self._follow(key, version_id, target)
        for reference in list(self._warm_errors):
            await self._warm(reference)

    async def _follow(self, key: str, old: int, new: int) -> None:
        refused_at = self._refused.get(new)
        if refused_at is not None and time.monotonic() - refused_at < REFUSED_RETRY_SECONDS:
            return
        try:
            if old in self._cache:  # a hot model: load its successor before switching
                await self._served(new)
        except Exception as exc:
            self._refused[new] = time.monotonic()
            log.error("alias %s moved to version id %d, which cannot be served (%s); keeping the old one for "
                      "now, trying again in %d s", key, new, exc, REFUSED_RETRY_SECONDS)
            return
        self._refused.pop(new, None)
        log.info("alias %s now serves version id %d (was %d)", key, new, old)
        self._refs[key] = new

    # -- inference --------------------------------------------------------------------------------------
