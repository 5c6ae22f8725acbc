"""What serving refuses, each kind with the HTTP status it answers (the API's error handler uses them)."""

from __future__ import annotations


class ServingError(Exception):
    """Base class: `status` and `code` go into the JSON error body with the message."""

    status = 400
    code = "bad_request"
    headers: dict[str, str] | None = None  # extra response headers (Retry-After)
    details: list[dict[str, object]] | None = None  # structured detail for the body (a flagged upload's reasons)

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TooLarge(ServingError):
    """An upload over the byte limit, or an image over the pixel limit."""

    status = 413
    code = "too_large"


class UnsupportedMedia(ServingError):
    """Not an image format served here, a refused content type, or a DICOM codec that is missing."""

    status = 415
    code = "unsupported_media_type"


class InvalidInput(ServingError):
    """A well-formed request whose content cannot be used: an empty, truncated or corrupt image, an unknown
    target label, a malformed model reference."""

    status = 422
    code = "invalid_input"


class ModelUnavailable(ServingError):
    """A registered model version that cannot be served: its checkpoint was changed (sha256 mismatch),
    is missing or does not load. Serving refuses it and keeps serving what it had."""

    status = 409
    code = "model_unavailable"


class Overloaded(ServingError):
    """More images wait for a model than the inference queue holds: try again after `retry_after` seconds."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class NotAChestXray(ServingError):
    """An upload the input gate flags while `CXR_INPUT_GATE=reject`: `details` has each flagged file's check."""

    status = 422
    code = "not_a_chest_xray"

    def __init__(self, message: str, *, details: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.details = details


class NotAcceptable(ServingError):
    """The `Accept` header refuses every encoding the answer could be given in."""

    status = 406
    code = "not_acceptable"
