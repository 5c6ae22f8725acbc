"""`GET /metrics`: Prometheus text."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import MetricsDep

router = APIRouter(tags=["health"])

EXAMPLE = """# HELP cxr_http_requests_total HTTP requests answered
# TYPE cxr_http_requests_total counter
cxr_http_requests_total{method="POST",route="/predict",status="200"} 42.0
"""


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": EXAMPLE}}, "description": "metrics"}},
)
def metrics(service_metrics: MetricsDep) -> Response:
    """Expose request counts and latencies by route, model load and inference times."""
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)
