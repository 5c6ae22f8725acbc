"""The predictor: registry models by reference, a small cache of loaded ones, inference off the event loop.

A reference (`name`, `name@alias`, `name:version`; a bare name means its `production` alias) maps to a model
version id, and ids map to loaded models in an LRU of `model_cache_size`. A version loads by reading its
checkpoint through the artifact store with the sha256 the registry recorded, so a changed file is refused.

Aliases are re-read every `alias_refresh_seconds` by a background task. When a served alias has moved, the
new version is loaded (and warmed) before the alias is switched to it, so no request waits for the load, and
a version that fails to load leaves the old one serving. Loaded models are never changed: a request keeps
the object it started with, and eviction only drops the cache's reference.

Forward passes go through each served model's `MicroBatcher` (concurrent requests share batches; its queue
bound answers 503 under overload) and through the model's runtime: eager at first, then, once a background
trial has timed the candidates of `ml.runtime` against eager (`runtime_candidates`), the fastest one that
keeps probabilities within 1e-4 of eager. Start-up and loads never wait for that trial. Dynamic int8 is not
a serving candidate: its accuracy check needs labelled test data that a load does not have (`bench`
measures it).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import numpy as np
import torch

from app.serving.batching import MicroBatcher, Ticket
from app.serving.errors import InvalidInput, ModelUnavailable
from app.serving.inputs import Upload, decode
from app.serving.metrics import ServiceMetrics
from app.serving.pool import InferencePool, set_torch_threads
from app.settings import AppSettings
from ml.errors import ModelError
from ml.evaluation.metrics import probabilities
from ml.explain.gradcam import compute_cams, encode_png, heatmap_grid, overlay
from ml.explain.split import CamSplit, rest_logits, split_at_cam_layer, split_cams
from ml.inference import LoadedModel, Prediction
from ml.models import CXRModel
from ml.runtime import EXACT_RUNTIMES, Runtime, build_runtime, choose_runtime, example_inputs
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.errors import IntegrityFailure, NotFound
from registry.models import ModelRef, aliases, get_model_version, parse_ref, resolve
from registry.records import ModelVersionRecord

log = logging.getLogger(__name__)
T = TypeVar("T")
TOP = "top"
REFUSED_RETRY_SECONDS = 60  # a version that failed to load is not tried again for an alias before this
TRIAL_DELAY_SECONDS = 2.0  # a runtime trial waits this long after the load: start-up and first requests go first


@dataclass
class CamInfo:
    """How `method=gradcam` CAMs are computed (GET /models shows it): `split` runs the trunk up to the CAM
    layer forward-only in `trunk_runtime` and back-propagates through the rest; `hooks` runs
    pytorch-grad-cam on the whole model (other methods, and models that cannot be cut, always do)."""

    path: str = "not built"  # not built | split | hooks
    trunk_runtime: str | None = None
    message: str = ""  # "trying <runtime> for the trunk" while the trial runs, or why something was refused


@dataclass
class RuntimeInfo:
    """Which runtime serves a model and what the trial measured (GET /models shows it)."""

    name: str = "eager"
    state: str = "eager"  # choosing | chosen | eager (no candidates) | failed
    trials: list[dict[str, object]] | None = None
    message: str = ""


class ServedModel:
    """A loaded model version. Forward passes share `loaded.model` (through `runtime`). Grad-CAM runs on a
    private copy cut at its CAM layer (`ml.explain.split`) when the model can be cut: the trunk runs
    forward-only in the runtime chosen for the model, and only the small rest runs backward. Other CAM
    methods (and models that cannot be cut) use pytorch-grad-cam's hooks on another private copy, under a
    lock, because hooks would be tripped by a concurrent forward on the same module."""

    def __init__(self, record: ModelVersionRecord, loaded: LoadedModel, load_seconds: float) -> None:
        self.record, self.loaded, self.load_seconds = record, loaded, load_seconds
        self._cam_lock = threading.Lock()
        self._cam_model: CXRModel | None = None
        self._split_lock = threading.Lock()
        self._cam_split: CamSplit | None = None
        self._cam_trunk: Runtime | None = None
        self.cam_info = CamInfo()
        cfg = loaded.data_config
        self.input_shape = (cfg.in_chans, cfg.input_size, cfg.input_size)
        self.runtime: Runtime = build_runtime("eager", loaded.model, torch.zeros(1, *self.input_shape))
        self.runtime_info = RuntimeInfo()
        self.batcher: MicroBatcher | None = None  # set by the predictor, on the event loop

    @property
    def labels(self) -> list[str]:
        return self.loaded.labels

    def forward(self, resized: list[torch.Tensor]) -> np.ndarray:
        """Probabilities (B, L) for resized (1, S, S) inputs with the current runtime; blocking."""
        x = self.loaded.preprocess.finish(torch.stack(resized)).to(self.loaded.device)
        runtime = self.runtime  # read once: a runtime chosen meanwhile serves the next batch
        with torch.inference_mode():
            return probabilities(runtime(x), self.loaded.task).cpu().numpy()

    def choose_runtime(self, candidates: list[str], threads: int | None) -> None:
        """Time `candidates` against eager and switch to the fastest that agrees within 1e-4; blocking."""
        try:
            choice = choose_runtime(
                self.loaded.model, example_inputs(self.input_shape), self._to_probabilities,
                candidates=candidates, tolerance=1e-4, threads=threads,
            )
        except Exception as exc:  # eager keeps serving
            log.exception("choosing a runtime for %s failed; serving eager", self.record.ref)
            self.runtime_info = RuntimeInfo(state="failed", message=f"{type(exc).__name__}: {exc}")
            return
        self.runtime = choice.runtime
        trials = [dict(t.__dict__) for t in choice.trials]
        log.info("%s serves with runtime %s (%s)", self.record.ref, choice.name,
                 ", ".join(f"{t.name} {t.median_ms:.2f} ms" if t.median_ms else f"{t.name} refused"
                           for t in choice.trials))
        # the trial is over ("chosen") once the Grad-CAM trunk has tried the same runtime too
        self.runtime_info = RuntimeInfo(choice.name, "choosing", trials, "trying it for the Grad-CAM trunk")
        self.choose_cam_trunk(choice.name, threads)
        self.runtime_info = RuntimeInfo(choice.name, "chosen", trials)

    def _to_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return probabilities(logits, self.loaded.task)

    def cams(self, x: torch.Tensor, targets: list[int], method: str) -> list[np.ndarray]:
        """One map per target class for the single input `x` through pytorch-grad-cam's hooks; blocking,
        call it on the pool."""
        with self._cam_lock:
            if self._cam_model is None:
                self._cam_model = copy.deepcopy(self.loaded.model).eval()
            return compute_cams(self._cam_model, x, targets, method)

    @property
    def split(self) -> CamSplit | None:
        """The model cut at its CAM layer once `build_split` has run (None before, or if it cannot be cut)."""
        return self._cam_split

    def build_split(self) -> CamSplit | None:
        """Cut a copy of the model at its CAM layer (once; a copy of its own, so the hooks path's copy is
        never shared with it); None when it cannot be cut. Blocking: call it on the pool."""
        with self._split_lock:
            if self.cam_info.path == "not built":
                model = copy.deepcopy(self.loaded.model).eval().requires_grad_(False)
                try:
                    split = split_at_cam_layer(model)
                except Exception as exc:  # the hooks path serves any model
                    if not isinstance(exc, ModelError):
                        log.exception("cutting %s at its CAM layer failed", self.record.ref)
                    self.cam_info = CamInfo("hooks", message=f"{type(exc).__name__}: {exc}")
                    log.info("%s: Grad-CAM through hooks (%s)", self.record.ref, exc)
                else:
                    self._cam_trunk = build_runtime("eager", split.trunk, self._example())
                    self._cam_split = split
                    self.cam_info = CamInfo("split", "eager")
            return self._cam_split

    def split_forward(self, resized: torch.Tensor) -> tuple[np.ndarray, list[torch.Tensor]]:
        """Probabilities (L,) for one resized (1, S, S) input and the trunk's outputs for `split_cams`."""
        split, trunk = self._cam_split, self._cam_trunk
        assert split is not None and trunk is not None
        x = self.loaded.preprocess.finish(resized[None]).to(self.loaded.device)
        values = list(trunk(x))
        return probabilities(rest_logits(split, values), self.loaded.task)[0].cpu().numpy(), values

    def _example(self) -> torch.Tensor:
        return example_inputs(self.input_shape, batch_sizes=(1,))[0].to(self.loaded.device)

    def choose_cam_trunk(self, name: str, threads: int | None) -> None:
        """Serve the Grad-CAM trunk with runtime `name` (the one chosen for the model) if, on an example,
        it keeps the probabilities within 1e-4 and the map within 1e-3 of the eager trunk; blocking."""
        split = self.build_split()
        if split is None or name == "eager":
            return
        self.cam_info = CamInfo("split", "eager", f"trying {name} for the trunk")
        x = self._example()
        try:
            candidate = build_runtime(name, split.trunk, x, threads=threads)
            eager_values, values = list(split.trunk(x)), list(candidate(x))
            prob_diff = float((self._to_probabilities(rest_logits(split, values))
                               - self._to_probabilities(rest_logits(split, eager_values))).abs().max())
            size = self.input_shape[1:]
            map_diff = float(np.abs(split_cams(split, values, [0], size)[0]
                                    - split_cams(split, eager_values, [0], size)[0]).max())
        except Exception as exc:  # the eager trunk keeps serving
            log.exception("building the %s Grad-CAM trunk for %s failed; keeping eager", name,
                          self.record.ref)
            self.cam_info = CamInfo("split", "eager", f"{name} refused: {type(exc).__name__}: {exc}")
            return
        if prob_diff > 1e-4 or map_diff > 1e-3:
            self.cam_info = CamInfo("split", "eager", f"{name} refused: probabilities {prob_diff:.1e}, "
                                                      f"map {map_diff:.1e} from eager")
            return
        self._cam_trunk = candidate
        self.cam_info = CamInfo("split", name)


@dataclass(frozen=True)
class Resolved:
    served: ServedModel
    alias: str | None  # the alias the request went through (None for `name:version`)


@dataclass
class Prepared:
    """One decoded upload: its model input (1, S, S) before normalisation, and the image when kept."""

    name: str
    width: int
    height: int
    resized: torch.Tensor
    decode_ms: float
    image: np.ndarray | None = None


@dataclass(frozen=True)
class ImagePrediction:
    prepared: Prepared
    prediction: Prediction
    inference_ms: float


@dataclass(frozen=True)
class CamImage:
    label: str
    index: int
    probability: float
    png: bytes
    grid: list[list[float]]


@dataclass(frozen=True)
class CamResult:
    prepared: Prepared
    prediction: Prediction
    cams: list[CamImage]
    inference_ms: float
    cam_ms: float


class Predictor:
    def __init__(
        self, *, settings: AppSettings, db: Database, artifacts: LocalArtifactStore, metrics: ServiceMetrics
    ) -> None:
        self.settings, self.db, self.artifacts, self.metrics = settings, db, artifacts, metrics
        self.pool = InferencePool(settings.inference_workers)
        self.metrics.pool_pending.set_function(lambda: self.pool.pending)
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
        """Set torch's threads, load the default and warm models (a failure is logged, not raised) and start
        re-reading aliases."""
        threads = set_torch_threads(self.settings.inference_threads, self.pool.workers)
        log.info("inference: %d pool workers, %d torch threads", self.pool.workers, threads)
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
        await anyio.to_thread.run_sync(self.pool.shutdown)

    def _warm_references(self) -> list[str]:
        return list(dict.fromkeys([self.settings.default_model, *self.settings.warm_models]))

    async def _warm(self, reference: str) -> None:
        try:
            resolved = await self.get(reference)
        except Exception as exc:
            self._warm_errors[reference] = str(exc)
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
            lambda resized: self.pool.run(self._forward, served, resized), max_size=s.batch_max_size,
            max_wait_s=s.batch_max_wait_ms / 1000, queue_limit=s.inference_queue_limit,
            concurrency=self.pool.workers, name=served.record.ref,
        )
        self._cache[version_id] = served
        candidates = [c for c in s.runtime_candidates if c in EXACT_RUNTIMES and c != "eager"]
        if candidates:
            served.runtime_info = RuntimeInfo(state="choosing")  # from now on, not once the thread starts
            task = asyncio.create_task(self._choose_runtime(served, candidates), name=f"cxr-runtime-{version_id}")
            self._choosing.add(task)
            task.add_done_callback(self._choosing.discard)
        else:
            served.runtime_info = RuntimeInfo(state="eager (no candidates)")
        while len(self._cache) > self.settings.model_cache_size:
            _, evicted = self._cache.popitem(last=False)
            log.info("evicted %s from the model cache", evicted.record.ref)
        self._loaded = dict(self._cache)
        self.metrics.models_loaded.set(len(self._cache))
        return served

    def _load(self, version_id: int) -> ServedModel:
        """Read, verify, build and warm one model version (blocking)."""
        with self.db.session() as session:
            record = get_model_version(session, version_id=version_id)
        start = time.perf_counter()
        try:
            loaded = self._build(record)
        except ModelUnavailable as exc:
            self.metrics.model_load_failures.labels(record.name, exc.code).inc()
            log.error("%s", exc)
            raise
        seconds = time.perf_counter() - start
        self.metrics.model_load.labels(record.name).observe(seconds)
        log.info("loaded %s (%s) in %.2f s", record.ref, record.architecture, seconds)
        return ServedModel(record, loaded, seconds)

    def _build(self, record: ModelVersionRecord) -> LoadedModel:
        if record.checkpoint is None:
            raise ModelUnavailable(f"model {record.ref} has no checkpoint", code="checkpoint_missing")
        try:
            data = self.artifacts.read_bytes(record.checkpoint.uri, sha256=record.checkpoint.sha256)
            loaded = LoadedModel.from_checkpoint(data)
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

    async def prepare(
        self, served: ServedModel, uploads: list[Upload], *, keep_images: bool = False
    ) -> list[Prepared]:
        """Decode and resize uploads on the pool, in order; the first bad one refuses the request."""
        return await self.pool.run(self._prepare_all, served, uploads, keep_images)

    def _prepare_all(self, served: ServedModel, uploads: list[Upload], keep_images: bool) -> list[Prepared]:
        out = []
        for upload in uploads:
            start = time.perf_counter()
            image = decode(upload, max_pixels=self.settings.max_image_pixels)
            resized = served.loaded.preprocess.resize(image)
            seconds = time.perf_counter() - start
            self.metrics.decode.observe(seconds)
            height, width = image.shape
            out.append(
                Prepared(upload.name, width, height, resized, seconds * 1000, image if keep_images else None)
            )
        return out

    def _forward(self, served: ServedModel, resized: list[torch.Tensor]) -> tuple[np.ndarray, float]:
        """One (micro-)batch on a pool thread: probabilities and the milliseconds it took."""
        start = time.perf_counter()
        probs = served.forward(resized)
        seconds = time.perf_counter() - start
        self.metrics.inference.labels(served.record.name, "predict").observe(seconds)
        self.metrics.batch_size.observe(len(resized))
        return probs, seconds * 1000

    def admit(self, served: ServedModel, images: int) -> Ticket:
        """A place in the model's inference queue for `images`, taken before they are decoded (raises
        `Overloaded`, answered 503 with Retry-After, when the queue is full)."""
        assert served.batcher is not None
        return served.batcher.ticket(images)

    async def infer(self, ticket: Ticket, resized: list[torch.Tensor]) -> tuple[np.ndarray, float]:
        """Probabilities (B, L) for resized (1, S, S) inputs, and the milliseconds of the forward pass they
        ran in (shared with the requests batched with them)."""
        return await ticket.submit(resized)

    def _prepare_and_forward(
        self, served: ServedModel, uploads: list[Upload]
    ) -> tuple[list[Prepared], np.ndarray, float]:
        """Decode, resize and run the uploads as one batch in one pool job (an idle model's fast path)."""
        prepared = self._prepare_all(served, uploads, False)
        probs, ms = self._forward(served, [p.resized for p in prepared])
        return prepared, probs, ms

    async def predict(self, served: ServedModel, uploads: list[Upload]) -> list[ImagePrediction]:
        """Probabilities for each upload. When the model is idle the request runs as one pool job of its own;
        otherwise it decodes, then joins the model's micro-batch queue."""
        with self.admit(served, len(uploads)) as ticket:
            if ticket.alone:
                prepared, probs, ms = await ticket.run_alone(
                    lambda: self.pool.run(self._prepare_and_forward, served, uploads))
            else:
                prepared = await self.prepare(served, uploads)
                probs, ms = await self.infer(ticket, [p.resized for p in prepared])
        return [
            ImagePrediction(p, served.loaded.explain_probabilities(row), ms)
            for p, row in zip(prepared, probs, strict=True)
        ]

    async def gradcam(
        self, served: ServedModel, upload: Upload, targets: list[str], method: str
    ) -> CamResult:
        """Probabilities for one upload, and an overlay at its size for each target (`top`: the most
        probable). Grad-CAM on a model that can be cut takes one forward pass of the trunk (in the model's
        runtime) for both; otherwise the probabilities come from the batched forward and the maps from
        pytorch-grad-cam's forward and backward."""
        check_targets(served.labels, targets)
        split = None
        if method == "gradcam":
            built = served.cam_info.path != "not built"
            split = served.split if built else await self.pool.run(served.build_split)
        with self.admit(served, 1) as ticket:
            [prepared] = await self.prepare(served, [upload], keep_images=True)
            if split is None:
                probs, inference_ms = await self.infer(ticket, [prepared.resized])
                row, values = probs[0], None
        if split is not None:  # its place in the queue is left as a batch's is: when its forward pass starts
            start = time.perf_counter()
            row, values = await self.pool.run(served.split_forward, prepared.resized)
            inference_ms = (time.perf_counter() - start) * 1000
        indices = target_indices(served.labels, targets, row)

        def explain() -> tuple[list[CamImage], float]:
            start = time.perf_counter()
            if values is None:
                maps = served.cams(served.loaded.preprocess.finish(prepared.resized[None]), indices, method)
            else:
                maps = split_cams(split, values, indices, tuple(prepared.resized.shape[-2:]))
            self.metrics.inference.labels(served.record.name, "gradcam").observe(time.perf_counter() - start)
            assert prepared.image is not None
            cams = [
                CamImage(served.labels[i], i, float(row[i]), encode_png(overlay(prepared.image, m)),
                         heatmap_grid(m))
                for i, m in zip(indices, maps, strict=True)
            ]
            return cams, (time.perf_counter() - start) * 1000

        cams, cam_ms = await self.pool.run(explain)
        prepared.image = None  # the full-size image is no longer needed
        return CamResult(prepared, served.loaded.explain_probabilities(row), cams, inference_ms, cam_ms)


def split_targets(targets: list[str]) -> list[str]:
    """Target names from repeated and comma-separated query values, without repeats; none means `top`."""
    names = [t.strip() for item in targets for t in item.split(",") if t.strip()]
    return list(dict.fromkeys(names)) or [TOP]


def check_targets(labels: list[str], names: list[str]) -> None:
    """Refuse a target that is neither `top` nor a label of the model (matching ignores case)."""
    known = {label.lower() for label in labels} | {TOP}
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        raise InvalidInput(
            f"unknown target '{unknown[0]}': the model's labels are {', '.join(labels)} (or use '{TOP}')",
            code="unknown_target",
        )


def target_indices(labels: list[str], names: list[str], probs: np.ndarray) -> list[int]:
    """Class indices for checked target names (`top`: the most probable), in order, without repeats."""
    by_name = {label.lower(): i for i, label in enumerate(labels)}
    indices = [int(np.argmax(probs)) if name.lower() == TOP else by_name[name.lower()] for name in names]
    return list(dict.fromkeys(indices))
