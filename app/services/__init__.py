"""What routes and the start-up bootstrap share: dataset registration, job submission."""

from __future__ import annotations

from app.api.errors import ApiError


def invalid(field: str, message: str) -> ApiError:
    """A 422 naming the request field that is wrong, shaped like FastAPI's own validation errors."""
    return ApiError(422, "validation_error", f"{field}: {message}", details=[{"field": field, "message": message}])
