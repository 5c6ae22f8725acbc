"""What the services refuse, as domain errors: they say what is wrong and with which request field, never
which HTTP status answers it (`app.api.errors` maps each kind to its status, as it does for serving's)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base class: a stable `code`, the message, and per-field `details` when there are several."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details
        if code is not None:
            self.code = code


class InvalidField(ServiceError):
    """A request field whose value cannot be used (an unknown model, a split the dataset lacks, a path outside
    the data roots), shaped like FastAPI's own validation errors."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details=[{"field": field, "message": message}])


class InvalidDataset(ServiceError):
    """Files (or options) a dataset adapter cannot read."""

    code = "invalid_dataset"


class JobNotSent(ServiceError):
    """The job is saved as queued but the task queue could not take it; a worker's sweep sends it later."""

    code = "queue_unavailable"

    def __init__(self, message: str, *, job_id: int, location: str, retry_after: int = 30) -> None:
        super().__init__(message, details=[{"job_id": job_id}])
        self.location, self.retry_after = location, retry_after
