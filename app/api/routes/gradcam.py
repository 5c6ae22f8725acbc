"""`POST /gradcam`: where the model looked, as an overlay at the upload's size."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Literal

from fastapi import File, Query, Request, UploadFile
from fastapi.responses import Response

from app.api.auth import PREDICT_KEY_DOC
from app.api.deps import ModelQuery, PredictorDep, SettingsDep
from app.api.uploads import UPLOAD_ERRORS_DOC, upload_router
from app.schemas.serving import CamTarget, GradcamResult, GradcamTiming, ModelIdentity
from app.serving.errors import InvalidInput, ServingError
from app.serving.inputs import read_upload
from app.serving.targets import split_targets
from ml.explain.gradcam import CAM_METHODS

router = upload_router()

CamMethod = Literal[tuple(CAM_METHODS)]  # type: ignore[valid-type]


@router.post(
    "/gradcam",
    response_model=GradcamResult,
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "PNG overlay (default), or JSON with `format=json`",
        }
    },
    description="`format=png` (default) answers the overlay of one target as `image/png` at the upload's "
    "size, with headers `X-Model`, `X-Target` and `X-Probability`. `format=json` answers the probabilities "
    "and, for each target, the overlay as base64 PNG and the heat map as a 16x16 grid." + UPLOAD_ERRORS_DOC
    + PREDICT_KEY_DOC,
)
async def gradcam(
    request: Request,
    predictor: PredictorDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="one PNG, JPEG or DICOM X-ray")],
    target: Annotated[
        list[str],
        Query(
            description="a label of the model, or `top` for the most probable; repeat it or separate "
            "labels by commas for several (format=json)",
            openapi_examples={
                "top": {"value": ["top"]},
                "label": {"value": ["Pneumonia"]},
                "several": {"value": ["Effusion,Atelectasis"]},
            },
        ),
    ] = ["top"],  # noqa: B006 - FastAPI copies defaults
    method: Annotated[CamMethod, Query(description="the CAM algorithm")] = "gradcam",
    format_: Annotated[Literal["png", "json"], Query(alias="format", description="png or json")] = "png",
    model: ModelQuery = None,
) -> Response | GradcamResult:
    """Explain a prediction with a class activation map over the X-ray."""
    start = time.perf_counter()
    targets = split_targets(target)
    if format_ == "png" and len(targets) > 1:
        raise InvalidInput(
            f"format=png gives one overlay; {len(targets)} targets were asked for: use format=json "
            "for several",
            code="too_many_targets",
        )
    sent = len((await request.form()).getlist("file"))  # the parsed form, cached: FastAPI keeps the last
    if sent != 1:
        raise ServingError(f"/gradcam explains one file; {sent} were sent in the field 'file'",
                           code="too_many_files")
    resolved = await predictor.get(model)
    upload = await read_upload(file, index=0, max_bytes=settings.max_upload_bytes)
    result = await predictor.gradcam(resolved.served, upload, targets, method)
    if format_ == "png":
        [cam] = result.cams
        return Response(
            cam.png,
            media_type="image/png",
            headers={
                "X-Model": resolved.served.record.ref,
                "X-Target": cam.label,
                "X-Probability": f"{cam.probability:.6f}",
            },
        )
    prep = result.prepared
    return GradcamResult(
        model=ModelIdentity.of(resolved.served.record, resolved.alias),
        filename=prep.name,
        width=prep.width,
        height=prep.height,
        method=method,
        probabilities=result.prediction.probabilities,
        thresholds=result.prediction.thresholds,
        positive=result.prediction.positive,
        targets=[
            CamTarget(
                label=c.label,
                probability=c.probability,
                heatmap=c.grid,
                overlay_png_base64=base64.b64encode(c.png).decode("ascii"),
            )
            for c in result.cams
        ],
        timing_ms=GradcamTiming(
            decode=round(prep.decode_ms, 2),
            inference=round(result.inference_ms, 2),
            cam=round(result.cam_ms, 2),
            total=round((time.perf_counter() - start) * 1000, 2),
        ),
    )
