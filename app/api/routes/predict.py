"""`POST /predict`: probabilities for every label of a registry model, for one or several X-rays."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile

from app.api.auth import AUTH_ERRORS, PREDICT_KEY_DOC, predict_caller
from app.api.deps import ModelQuery, PredictorDep, SettingsDep
from app.api.errors import error_responses
from app.schemas.serving import ModelIdentity, PredictResult, Timing
from app.serving.inputs import Upload, read_upload, require_multipart

# The statuses an upload route answers besides 200; `app.api.errors` gives their JSON body.
UPLOAD_ERRORS = error_responses(400, 404, 409, 413, 415, 422, 503)
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


router = upload_router()


async def read_uploads(files: list[UploadFile], max_bytes: int) -> list[Upload]:
    return [await read_upload(f, index=i, max_bytes=max_bytes) for i, f in enumerate(files)]


@router.post(
    "/predict",
    response_model=PredictResult | list[PredictResult],
    description="One file answers one result; several files (repeat the field `file`) answer a list in the "
    "order sent. The model's identity, every label's probability, the thresholds and the labels at or above "
    "them, and the time taken in milliseconds." + UPLOAD_ERRORS_DOC + PREDICT_KEY_DOC,
)
async def predict(
    predictor: PredictorDep,
    settings: SettingsDep,
    file: Annotated[
        list[UploadFile], File(description="PNG, JPEG (8 or 16 bit) or DICOM; repeat for several")
    ],
    model: ModelQuery = None,
) -> PredictResult | list[PredictResult]:
    """Classify chest X-rays: a probability for every pathology."""
    start = time.perf_counter()
    resolved = await predictor.get(model)
    uploads = await read_uploads(file, settings.max_upload_bytes)
    predictions = await predictor.predict(resolved.served, uploads)
    total = (time.perf_counter() - start) * 1000
    identity = ModelIdentity.of(resolved.served.record, resolved.alias)
    results = [
        PredictResult(
            model=identity,
            filename=p.prepared.name,
            width=p.prepared.width,
            height=p.prepared.height,
            probabilities=p.prediction.probabilities,
            thresholds=p.prediction.thresholds,
            positive=p.prediction.positive,
            timing_ms=Timing(
                decode=round(p.prepared.decode_ms, 2),
                inference=round(p.inference_ms, 2),
                total=round(total, 2),
            ),
        )
        for p in predictions
    ]
    return results[0] if len(results) == 1 else results
