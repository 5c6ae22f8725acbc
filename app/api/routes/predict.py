"""`POST /predict`: probabilities for every label of a registry model, for one or several X-rays."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import File, UploadFile

from app.api.auth import PREDICT_KEY_DOC
from app.api.deps import ModelQuery, PredictorDep, SettingsDep
from app.api.uploads import UPLOAD_ERRORS_DOC, read_uploads, upload_router
from app.schemas.reading import reading
from app.schemas.serving import ModelIdentity, PredictResult, Timing

router = upload_router()


@router.post(
    "/predict",
    response_model=PredictResult | list[PredictResult],
    description="One file answers one result; several files (repeat the field `file`) answer a list in the "
    "order sent. The model's identity, every label's probability, the thresholds and the labels at or above "
    "them, and the time taken in milliseconds; per file the input gate's check (`input_check`; with "
    "`CXR_INPUT_GATE=reject` a flagged file is refused with 422 `not_a_chest_xray`), each finding in words with the "
    "model's test AUROC for it, warnings, the resolution the model sees and whether probabilities are calibrated."
    + UPLOAD_ERRORS_DOC + PREDICT_KEY_DOC,
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
            **reading(resolved.served, p.prediction, p.prepared.input_check),
            timing_ms=Timing(
                decode=round(p.prepared.decode_ms, 2),
                inference=round(p.inference_ms, 2),
                total=round(total, 2),
            ),
        )
        for p in predictions
    ]
    return results[0] if len(results) == 1 else results
