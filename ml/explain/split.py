"""Grad-CAM with the model cut in two at its target layer: a forward-only trunk and a small rest.

Grad-CAM needs the target layer's activations A and the gradient of a class logit with respect to A.
That gradient flows only through what comes after A, so the network up to A can run forward-only, in
whatever runtime serves the model (ONNX Runtime, channels-last), and only the rest (for DenseNet-121: the
final ReLU, the pooling and the linear head) needs autograd. `compute_cams` (pytorch-grad-cam's hooks)
runs the whole network eagerly, forward and backward; this gives the same maps from one served forward.

`split_at_cam_layer` traces the model with `torch.fx` (apart from any other model run: see `TraceGuard`),
descending only into the modules on the path to the target layer (every other module stays one opaque call),
and cuts the graph: the rest holds every node that depends on A; the trunk holds everything else and returns
A first, then any other value the rest reads (a residual branch that skips the layer, say). Models whose forward cannot be traced (data-
dependent control flow, as in the ViT's shape checks) raise `ModelError`; callers fall back to the hooks.

The maps follow pytorch-grad-cam's `GradCAM` step for step (weights: the gradient's spatial mean; map:
ReLU of the weighted sum of channels; its `scale_cam_image` to normalise and resize), so both paths agree
to float rounding; the tests check it for every registered model that can be cut.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from ml.errors import ModelError
from ml.lazy_imports import locked_import
from ml.models.base import CXRModel


class TraceGuard:
    """Keeps `torch.fx` tracing apart from every other model run in the process.

    While fx traces, it patches `torch.nn.Module.__call__` (and `__getattr__`) for the whole process, so a
    forward pass on another thread at that moment runs through the tracer and fails ("module is not
    installed as a submodule"). A process that runs models on several threads holds `running()` around each
    model run; `split_at_cam_layer` holds `tracing()`, which keeps new runs out (a waiting trace goes first)
    and waits for those under way. Runs do not exclude one another; a few µs each."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs = 0
        self._tracing = False

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._changed:
            while self._tracing:
                self._changed.wait()
            self._runs += 1
        try:
            yield
        finally:
            with self._changed:
                self._runs -= 1
                if not self._runs:
                    self._changed.notify_all()

    @contextmanager
    def tracing(self) -> Iterator[None]:
        with self._changed:
            while self._tracing:
                self._changed.wait()
            self._tracing = True
            while self._runs:
                self._changed.wait()
        try:
            yield
        finally:
            with self._changed:
                self._tracing = False
                self._changed.notify_all()


TRACE_GUARD = TraceGuard()


class _CutTracer(fx.Tracer):
    """Traces into the modules on the paths to `layers` and keeps every other module as one call."""

    def __init__(self, layers: Sequence[str]) -> None:
        super().__init__()
        self._path = {".".join(parts[:i]) for parts in (layer.split(".") for layer in layers)
                      for i in range(len(parts))}  # "", "features", ...

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name not in self._path


@dataclass
class CamSplit:
    """`trunk(x)` returns a tuple: the target layers' outputs first (one for most models, one per member of an
    ensemble), then what else `rest` reads; `rest(*trunk(x))` returns the model's logits. Both share the
    model's parameters."""

    trunk: fx.GraphModule
    rest: fx.GraphModule
    layers: tuple[str, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(*self.trunk(x))


def split_at_cam_layer(model: CXRModel) -> CamSplit:
    """Cut `model` at its CAM layers (`cam_layer_names()`); `ModelError` when its forward cannot be traced,
    a layer is not called exactly once, or one layer's output feeds another."""
    layers = model.cam_layer_names()
    named = "', '".join(layers)
    try:
        with TRACE_GUARD.tracing():
            graph = _CutTracer(layers).trace(model)
    except Exception as exc:  # fx raises several types for Python it cannot trace
        raise ModelError(f"{model.cfg.name}: cannot trace the forward to cut it at '{named}': {exc}") from exc
    cuts = []
    for layer in layers:
        calls = [n for n in graph.nodes if n.op == "call_module" and n.target == layer]
        if len(calls) != 1:
            raise ModelError(f"{model.cfg.name}: the CAM layer '{layer}' is called {len(calls)} times in the "
                             "forward")
        cuts.append(calls[0])
    after = set().union(*(_dependents(cut) for cut in cuts))
    if any(cut in after for cut in cuts):
        raise ModelError(f"{model.cfg.name}: one CAM layer's output feeds another ('{named}')")
    # values computed before the cuts that the rest reads (constants and parameters are re-read instead)
    carried = cuts + [
        n for n in graph.nodes
        if n not in after and n not in cuts and n.op not in ("get_attr", "output")
        and any(user in after for user in n.users)
    ]
    output = next(n for n in graph.nodes if n.op == "output")
    if any(n not in after and n.op != "get_attr" for n in output.all_input_nodes):
        raise ModelError(f"{model.cfg.name}: the logits do not all depend on the CAM layer(s) '{named}'")

    trunk_graph, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in after or node.op == "output":
            continue
        env[node] = trunk_graph.node_copy(node, lambda n: env[n])
    trunk_graph.output(tuple(env[n] for n in carried))
    trunk = fx.GraphModule(model, trunk_graph)
    trunk.graph.eliminate_dead_code()  # what only the rest needed
    trunk.recompile()

    rest_graph, env = fx.Graph(), {}
    for i, node in enumerate(carried):
        env[node] = rest_graph.placeholder(f"value{i}")
    for node in graph.nodes:
        if node in after or node is output or (node.op == "get_attr" and any(u in after for u in node.users)):
            env[node] = rest_graph.node_copy(node, lambda n: env[n])
    return CamSplit(trunk, fx.GraphModule(model, rest_graph), tuple(layers))


def _dependents(node: fx.Node) -> set[fx.Node]:
    """Every node whose value depends on `node` (not `node` itself)."""
    seen: set[fx.Node] = set()
    stack = list(node.users)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.users)
    return seen


def rest_logits(split: CamSplit, values: Sequence[torch.Tensor]) -> torch.Tensor:
    """The logits from the trunk's outputs, without gradients."""
    with torch.inference_mode():
        return split.rest(*values)


def split_cams(
    split: CamSplit, values: Sequence[torch.Tensor], targets: list[int], size: tuple[int, int]
) -> list[np.ndarray]:
    """One float32 map (height, width) = `size` in [0, 1] per class index in `targets`, for the single image
    whose trunk outputs are `values` (each with batch 1). Gradients go through `split.rest` only, and only
    to the layers' outputs: the rest's parameters collect none. With several layers (an ensemble) each
    layer's map is scaled to [0, 1] and the maps are averaged, as pytorch-grad-cam does."""
    scale_cam_image = locked_import("pytorch_grad_cam.utils.image").scale_cam_image

    if not targets:
        return []
    k = len(split.layers)
    for layer, value in zip(split.layers, values[:k], strict=True):
        if value.ndim != 4:
            raise ModelError(f"the CAM layer '{layer}' gives a {value.ndim}-D output; the cut needs (B, C, h, w)")
    n = len(targets)
    with torch.inference_mode(False), torch.enable_grad():
        # clones are normal tensors even when the trunk ran in inference mode; one copy per target
        activations = [v.detach().clone().expand(n, -1, -1, -1).contiguous().requires_grad_(True)
                       for v in values[:k]]
        others = [v.detach().clone().expand(n, *v.shape[1:]) for v in values[k:]]
        logits = split.rest(*activations, *others)
        scores = logits[torch.arange(n), torch.as_tensor(targets)]
        grads = torch.autograd.grad(scores.sum(), activations)
    height, width = size
    per_layer = []
    for grad, act in zip(grads, activations, strict=True):
        weights = grad.mean(dim=(2, 3), keepdim=True)  # GradCAM.get_cam_weights
        cams = torch.relu((weights * act.detach()).sum(dim=1)).float().cpu().numpy()
        per_layer.append(scale_cam_image(cams, (width, height)))  # each layer to [0, 1] at the output size
    maps = scale_cam_image(np.mean(np.stack(per_layer, axis=1), axis=1))  # then across layers
    return [np.clip(np.nan_to_num(m.astype(np.float32)), 0.0, 1.0) for m in maps]
