"""The service's Prometheus metrics, in a registry of its own per app (tests build several apps).

HTTP requests are counted and timed by route template (`/models/{name}/versions`, `/static/{path}`, never the
raw path, so the label set stays small; only paths no route serves are `unmatched`). Model loads, forward
passes, CAMs, refused inputs and the wait in a model's micro-batch queue carry the model's name and version;
`cxr_model_loaded` has a series per version held in memory. `cxr_replica_info` names the replica (and its
process) that answered a scrape, so series from replicas behind one proxy can be told apart and joined on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MODEL = ("model", "version")  # the labels of every per-model series


class ServiceMetrics:
    def __init__(self, replica_id: str = "") -> None:
        self.registry = r = CollectorRegistry()
        Info("cxr_replica", "the API replica and process that answered", registry=r).info(
            {"replica": replica_id, "pid": str(os.getpid())})

        def seconds(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=r)

        self.requests = Counter("cxr_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=r)
        self.latency = seconds("cxr_http_request_duration_seconds", "HTTP request latency",
                               ("method", "route"))
        self.model_load = seconds("cxr_model_load_seconds", "reading, verifying, building and warming a "
                                  "model version", MODEL)
        self.model_load_failures = Counter("cxr_model_load_failures", "model versions refused at load",
                                           [*MODEL, "reason"], registry=r)
        self.inference = seconds("cxr_inference_seconds", "forward passes (predict) and CAMs (gradcam)",
                                 (*MODEL, "kind"))
        self.inference_errors = Counter(
            "cxr_inference_errors", "requests for a model refused or failed (reason: the error code, e.g. "
            "invalid_image, overloaded, image_too_large)", [*MODEL, "kind", "reason"], registry=r)
        self.queue_wait = Histogram("cxr_inference_queue_wait_seconds", "from joining a model's micro-batch "
                                    "queue to its forward pass starting (0 for a request that found it idle)",
                                    MODEL, buckets=WAIT_BUCKETS, registry=r)
        self.batch_size = Histogram("cxr_inference_batch_size", "images per forward pass (micro-batching)",
                                    MODEL, buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.decode = seconds("cxr_decode_seconds", "decoding and resizing one upload")
        self.models_loaded = Gauge("cxr_models_loaded", "model versions held in memory", registry=r)
        self.model_loaded = Gauge("cxr_model_loaded", "1 for each model version held in memory",
                                  [*MODEL, "architecture"], registry=r)
        self.pool_pending = Gauge("cxr_inference_pending", "pool work queued or running", registry=r)
        self.alias_refreshes = Counter("cxr_alias_refreshes", "alias re-reads completed (every "
                                       "alias_refresh_seconds)", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by the template of the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # what a route needs to match again afterwards (routing changes root_path inside a mount)
        asked = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""),
                 "method": scope["method"]}
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or template(scope.get("app"), asked)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def template(app: object, scope: Scope) -> str:
    """The template of the route serving `scope` when routing left none in it: Starlette's own routes
    (`/openapi.json`), mounts (`/static/{path}`), and any route when a middleware answered before routing (a
    refused key); `unmatched` for a path no route serves."""
    for route in _routes(getattr(app, "router", None)):
        try:
            match, _ = route.matches(scope)
        except Exception:  # noqa: BLE001 - a route that cannot judge this scope does not name it
            continue
        if match is not Match.NONE:
            return f"{route.path}/{{path}}" if isinstance(route, Mount) else route.path
    return "unmatched"


def _routes(router: object) -> Iterator[Route | Mount]:
    """The routes and mounts of `router`, those of the routers it includes too (FastAPI may keep them apart)."""
    for route in getattr(router, "routes", ()):
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner)
        elif isinstance(route, (Route, Mount)):
            yield route
