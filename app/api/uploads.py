"""What the routes that take X-ray uploads (`/predict`, `/gradcam`) share: their router (multipart only, the key
rule of `predict_caller`, their errors documented) and reading the uploaded files."""

from __future__ import annotations

from fastapi import APIRouter, Depends, UploadFile

from app.api.auth import AUTH_ERRORS, predict_caller
from app.api.errors import error_responses
from app.serving.inputs import Upload, read_upload, require_multipart

# The statuses an upload route answers besides 200; `app.api.errors` gives their JSON body.
UPLOAD_ERRORS = error_responses(400, 404, 409, 413, 415, 422, 503, examples={
    404: ("not_found", "no model named 'chest14' (known: pneumonia)"),
    409: ("integrity_failure", "model pneumonia:2 is refused: artifact 'models/pneumonia/2.pt' has sha256 "
          "5be1c0d2a9e4..., the registry recorded 9f2c81aa03d7...: the file was changed or replaced"),
    422: ("invalid_image", "'scan.png': not a recognised image (expected PNG, JPEG, TIFF, BMP or DICOM)"),
})
UPLOAD_ERRORS_DOC = """
Errors (JSON `{"error", "message"}`): **400** malformed multipart or too many files; **404** unknown model;
**409** the model version cannot be served (its checkpoint was changed or does not load); **413** a file or
the request over the byte limit, or an image over the pixel limit; **415** not multipart, a content type
that is not an image, not a PNG/JPEG/DICOM file, or a DICOM transfer syntax without a codec here (named);
**422** an empty, truncated or corrupt image, an unknown target label, a malformed model reference; **503** the
model's inference queue is full (`Retry-After` says when to try again)."""


def upload_router() -> APIRouter:
    """A router for routes that take X-ray uploads: multipart only, their errors documented."""
    return APIRouter(tags=["inference"], dependencies=[Depends(predict_caller), Depends(require_multipart)],
                     responses={**UPLOAD_ERRORS, **AUTH_ERRORS})


async def read_uploads(files: list[UploadFile], max_bytes: int) -> list[Upload]:
    return [await read_upload(f, index=i, max_bytes=max_bytes) for i, f in enumerate(files)]
