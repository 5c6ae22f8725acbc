"""A loaded model version as the service serves it: its runtime, the trial that chooses it, and Grad-CAM.

A `ServedModel` answers forward passes through `runtime`: eager at first, then, once a background trial has
timed the candidates of `ml.runtime` against eager (`choose_runtime`), the fastest one that keeps probabilities
within 1e-4 of eager. Grad-CAM runs on private copies of the model: cut at its CAM layer (`ml.explain.split`)
when it can be, so the trunk runs forward-only in the chosen runtime (`build_split`, `choose_cam_trunk`,
`split_forward`), else through pytorch-grad-cam's hooks (`cams`). `app.serving.cache` loads these and decides
when trials run; `app.serving.predictor` runs requests through them.
"""

from __future__ import annotations

import copy
import logging
import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from app.serving.batching import MicroBatcher
from app.serving.metrics import ServiceMetrics
from app.serving.reduced import Variant
from ml.errors import ModelError
from ml.evaluation.metrics import probabilities
from ml.explain.gradcam import compute_cams
from ml.explain.split import TRACE_GUARD, CamSplit, rest_logits, split_at_cam_layer, split_cams
from ml.inference import LoadedModel
from ml.models import CXRModel
from ml.runtime import Runtime, build_runtime, choose_runtime, example_inputs, time_runtime
from ml.tta import averaged_logits
from registry.records import ModelVersionRecord

log = logging.getLogger(__name__)


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

    def __init__(self, record: ModelVersionRecord, loaded: LoadedModel, load_seconds: float,
                 metrics: ServiceMetrics) -> None:
        self.record, self.loaded, self.load_seconds, self.metrics = record, loaded, load_seconds, metrics
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
        self.batcher: MicroBatcher | None = None  # set by the model cache, on the event loop
        self.variants: list[Variant] = []  # admitted reduced-precision variants (`app.serving.reduced`)

    @property
    def labels(self) -> list[str]:
        return self.loaded.labels

    @property
    def metric_labels(self) -> tuple[str, str]:
        """The model and version labels of its metric series."""
        return self.record.name, str(self.record.version)

    def forward(self, resized: list[torch.Tensor]) -> np.ndarray:
        """Probabilities (B, L) for resized (1, S, S) inputs with the current runtime, averaged over the
        model's test-time views (`ml.tta`: one batch of B x views); blocking."""
        x = self.loaded.preprocess.finish(torch.stack(resized)).to(self.loaded.device)
        runtime = self.runtime  # read once: a runtime chosen meanwhile serves the next batch
        with TRACE_GUARD.running(), torch.inference_mode():
            return probabilities(averaged_logits(runtime, x, self.loaded.tta), self.loaded.task).cpu().numpy()

    def timed_forward(self, resized: list[torch.Tensor]) -> tuple[np.ndarray, float]:
        """`forward` for one (micro-)batch on a pool thread, recorded in the metrics: probabilities and the
        milliseconds it took."""
        start = time.perf_counter()
        probs = self.forward(resized)
        seconds = time.perf_counter() - start
        self.metrics.inference.labels(*self.metric_labels, "predict").observe(seconds)
        self.metrics.batch_size.labels(*self.metric_labels).observe(len(resized))
        return probs, seconds * 1000

    def choose_runtime(self, candidates: list[str], threads: int | None) -> None:
        """Time `candidates` against eager and switch to the fastest that agrees within 1e-4; blocking."""
        try:
            with TRACE_GUARD.running():
                choice = choose_runtime(
                    self.loaded.model, [x.to(self.loaded.device) for x in example_inputs(self.input_shape)],
                    self._to_probabilities,
                    candidates=candidates, tolerance=1e-4, threads=threads,
                )
        except Exception as exc:  # eager keeps serving
            log.exception("choosing a runtime for %s failed; serving eager", self.record.ref)
            self.runtime_info = RuntimeInfo(state="failed", message=f"{type(exc).__name__}: {exc}")
            return
        exact = choice.name
        self.runtime = choice.runtime
        trials = [dict(t.__dict__) for t in choice.trials]
        if self.variants:
            chosen_ms = next((t.median_ms for t in choice.trials if t.name == exact), None)
            faster = self._time_variants(trials, chosen_ms, threads)
            if faster is not None:
                self.runtime = faster
                choice.runtime = faster
        log.info("%s serves with runtime %s (%s)", self.record.ref, choice.name,
                 ", ".join(f"{t.name} {t.median_ms:.2f} ms" if t.median_ms else f"{t.name} refused"
                           for t in choice.trials))
        # the trial is over ("chosen") once the Grad-CAM trunk has tried the same runtime too
        self.runtime_info = RuntimeInfo(choice.name, "choosing", trials, "trying it for the Grad-CAM trunk")
        self.choose_cam_trunk(exact, threads)  # the CAM's trunk stays exact: an admission covers probabilities
        self.runtime_info = RuntimeInfo(choice.name, "chosen", trials)

    def _time_variants(self, trials: list[dict[str, object]], chosen_ms: float | None,
                       threads: int | None) -> Runtime | None:
        """Time each admitted variant at batch 1 and add its trial; the fastest if it beats `chosen_ms`."""
        example = [x.to(self.loaded.device) for x in example_inputs(self.input_shape)]
        best: tuple[float, Runtime] | None = None
        for variant in self.variants:
            started = time.perf_counter()
            try:
                runtime = variant.build(self.loaded, threads)
                with TRACE_GUARD.running(), torch.inference_mode():
                    diff = float((self._to_probabilities(runtime(example[1]).float())
                                  - self._to_probabilities(self.loaded.model(example[1]))).abs().max())
                median = statistics.median(time_runtime(runtime, example[0]))
            except Exception as exc:  # the exact runtime keeps serving
                log.exception("%s: variant %s failed its trial", self.record.ref, variant.runtime)
                trials.append({"name": variant.runtime, "accepted": False, "median_ms": None, "max_abs_diff": None,
                               "build_s": None, "reason": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            trials.append({"name": variant.runtime, "accepted": True, "median_ms": median, "max_abs_diff": diff,
                           "build_s": time.perf_counter() - started, "reason": variant.summary})
            if best is None or median < best[0]:
                best = (median, runtime)
        if best is not None and (chosen_ms is None or best[0] < chosen_ms):
            return best[1]
        return None

    def _to_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return probabilities(logits, self.loaded.task)

    def cams(self, x: torch.Tensor, targets: list[int], method: str) -> list[np.ndarray]:
        """One map per target class for the single input `x` through pytorch-grad-cam's hooks; blocking,
        call it on the pool."""
        with self._cam_lock:
            if self._cam_model is None:
                self._cam_model = copy.deepcopy(self.loaded.model).eval()
            with TRACE_GUARD.running():
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
        """Probabilities (L,) for one resized (1, S, S) input and the trunk's outputs for `split_cams`. A model
        answering with test-time views gets its probabilities from `forward` (the views averaged, as
        `/predict` answers) and its map from the image itself."""
        split, trunk = self._cam_split, self._cam_trunk
        assert split is not None and trunk is not None
        x = self.loaded.preprocess.finish(resized[None]).to(self.loaded.device)
        with TRACE_GUARD.running():
            values = list(trunk(x))
            if self.loaded.tta == "none":
                return probabilities(rest_logits(split, values), self.loaded.task)[0].cpu().numpy(), values
        return self.forward([resized])[0], values  # not nested in running(): a waiting trace would block it

    def split_maps(self, values: list[torch.Tensor], targets: list[int], size: tuple[int, int]) -> list[np.ndarray]:
        """The maps of `targets` from `split_forward`'s trunk outputs, by back-propagating through the rest."""
        split = self._cam_split
        assert split is not None
        with TRACE_GUARD.running():
            return split_cams(split, values, targets, size)

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
            with TRACE_GUARD.running():
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

