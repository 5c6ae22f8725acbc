"""The predictor: a request's uploads through a served model, off the event loop, in one direction.

`POST /predict` resolves its model in the cache (`app.serving.cache`), takes a place in the model's queue
(`app.serving.batching`), then either runs alone, when the model is idle (decode, preprocess and forward as
one job on the inference pool), or decodes on the pool and joins a micro-batch, whose forward pass the
batcher runs on the pool through `ServedModel.timed_forward`. `POST /gradcam` does the same for one upload,
then computes the maps: on a model cut at its CAM layer, the trunk's one forward pass gives both the
probabilities and the activations, and only the rest runs backward; otherwise pytorch-grad-cam's hooks run on
a private copy (see `app.serving.served`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import numpy as np
import torch

from app.serving.batching import Ticket
from app.serving.cache import ModelCache, Resolved
from app.serving.errors import ServingError
from app.serving.inputs import Upload, decode_for, decode_twice_for
from app.serving.metrics import ServiceMetrics
from app.serving.pool import InferencePool, set_torch_threads
from app.serving.served import ServedModel
from app.serving.targets import check_targets, target_indices
from app.serving.trust import InputGuard
from app.settings import AppSettings
from ml.explain.gradcam import heatmap_grid, overlay
from ml.explain.overlays import DEFAULT_FORMAT, DEFAULT_MAX_SIDE, OVERLAY_FORMATS, encode_overlay, fit_within
from ml.inference import Prediction
from ml.trust import InputCheck
from registry.artifacts import LocalArtifactStore
from registry.db import Database

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One decoded upload: its model input (1, S, S) before normalisation, and the image when kept (reduced
    to the overlay's size: `width` and `height` are the upload's)."""

    name: str
    width: int
    height: int
    resized: torch.Tensor
    decode_ms: float
    image: np.ndarray | None = None
    input_check: InputCheck | None = None  # the input gate's verdict (app.serving.trust)


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
    overlay: bytes  # encoded as `format`
    format: str  # a key of `ml.explain.overlays.OVERLAY_FORMATS`
    grid: list[list[float]]

    @property
    def media_type(self) -> str:
        return OVERLAY_FORMATS[self.format]


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
        self.settings, self.metrics = settings, metrics
        self.pool = InferencePool(settings.inference_workers)
        self.guard = InputGuard(settings.input_gate)
        self.metrics.pool_pending.set_function(lambda: self.pool.pending)
        self.models = ModelCache(settings=settings, db=db, artifacts=artifacts, metrics=metrics, pool=self.pool)

    async def start(self) -> None:
        """Set torch's threads, then load the default and warm models and keep aliases current."""
        threads = set_torch_threads(self.settings.inference_threads, self.pool.workers)
        log.info("inference: %d pool workers, %d torch threads", self.pool.workers, threads)
        await self.models.start()

    async def close(self) -> None:
        await self.models.close()
        await anyio.to_thread.run_sync(self.pool.shutdown)

    async def get(self, reference: str | None) -> Resolved:
        """The loaded model a reference names (default: the default model's production alias)."""
        return await self.models.get(reference)

    async def prepare(
        self, served: ServedModel, uploads: list[Upload], *, keep_side: int | None = None
    ) -> list[Prepared]:
        """Decode and resize uploads on the pool, in order; the first bad one refuses the request. With
        `keep_side`, each image is kept too, reduced to at most that many pixels on its longest side."""
        return await self.pool.run(self._prepare_all, served, uploads, keep_side)

    def _prepare_all(self, served: ServedModel, uploads: list[Upload], keep_side: int | None) -> list[Prepared]:
        # The model's input is decoded for it (`ml.decoding`: reduced where the image is far larger, unless
        # CXR_REDUCED_DECODING=false), the same for /predict and /gradcam, so both give the same probabilities
        # and input check; an overlay that needs more pixels is decoded for itself beside it.
        reduced = self.settings.reduced_decoding
        short_side = served.loaded.preprocess.source_side if reduced else 0
        long_side = (keep_side or 0) if reduced else 0
        out = []
        for upload in uploads:
            start = time.perf_counter()
            if keep_side is None:
                decoded, shown = decode_for(upload, max_pixels=self.settings.max_image_pixels,
                                            short_side=short_side), None
            else:
                decoded, shown = decode_twice_for(upload, max_pixels=self.settings.max_image_pixels,
                                                  short_side=short_side, long_side=long_side)
            check = self.guard.check(upload, decoded.image, (decoded.height, decoded.width))
            resized = served.loaded.preprocess.resize(decoded.image)
            seconds = time.perf_counter() - start
            self.metrics.decode.observe(seconds)
            kept = None if shown is None else fit_within(shown.image, keep_side)
            width, height = decoded.width, decoded.height
            del decoded, shown  # a large upload's full-size image is freed before the CAM runs
            out.append(Prepared(upload.name, width, height, resized, seconds * 1000, kept, check))
        return out

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
        prepared = self._prepare_all(served, uploads, None)
        probs, ms = served.timed_forward([p.resized for p in prepared])
        return prepared, probs, ms

    @contextmanager
    def _errors_counted(self, served: ServedModel, kind: str) -> Iterator[None]:
        """Count a refusal of a request for `served` (a bad image, a full queue, an unknown target) by its code."""
        try:
            yield
        except ServingError as exc:
            self.metrics.inference_errors.labels(*served.metric_labels, kind, exc.code).inc()
            raise

    async def predict(self, served: ServedModel, uploads: list[Upload]) -> list[ImagePrediction]:
        """Probabilities for each upload (refusals counted per model)."""
        with self._errors_counted(served, "predict"):
            return await self._predict(served, uploads)

    async def _predict(self, served: ServedModel, uploads: list[Upload]) -> list[ImagePrediction]:
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
        self, served: ServedModel, upload: Upload, targets: list[str], method: str, *,
        max_side: int = DEFAULT_MAX_SIDE, fmt: str = DEFAULT_FORMAT,
    ) -> CamResult:
        """`_gradcam`, its refusals counted per model."""
        with self._errors_counted(served, "gradcam"):
            return await self._gradcam(served, upload, targets, method, max_side=max_side, fmt=fmt)

    async def _gradcam(
        self, served: ServedModel, upload: Upload, targets: list[str], method: str, *,
        max_side: int = DEFAULT_MAX_SIDE, fmt: str = DEFAULT_FORMAT,
    ) -> CamResult:
        """Probabilities for one upload, and an overlay for each target (`top`: the most probable) at the
        upload's size reduced to `max_side` on its longest side, encoded as `fmt`. Grad-CAM on a model that
        can be cut takes one forward pass of the trunk (in the model's runtime) for both; otherwise the
        probabilities come from the batched forward and the maps from pytorch-grad-cam's forward and
        backward."""
        check_targets(served.labels, targets)
        split = None
        if method == "gradcam":
            built = served.cam_info.path != "not built"
            split = served.split if built else await self.pool.run(served.build_split)
        with self.admit(served, 1) as ticket:
            [prepared] = await self.prepare(served, [upload], keep_side=max_side)
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
                maps = served.split_maps(values, indices, tuple(prepared.resized.shape[-2:]))
            self.metrics.inference.labels(*served.metric_labels, "gradcam").observe(time.perf_counter() - start)
            assert prepared.image is not None
            cams = [
                CamImage(served.labels[i], i, float(row[i]), encode_overlay(overlay(prepared.image, m), fmt), fmt,
                         heatmap_grid(m))
                for i, m in zip(indices, maps, strict=True)
            ]
            return cams, (time.perf_counter() - start) * 1000

        cams, cam_ms = await self.pool.run(explain)
        prepared.image = None  # the overlay's image is no longer needed
        return CamResult(prepared, served.loaded.explain_probabilities(row), cams, inference_ms, cam_ms)
