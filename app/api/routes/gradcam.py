"""`POST /gradcam`: where the model looked, as an overlay at the upload's size (at most `max_side` pixels on its
longest side) in JPEG, PNG or WebP (`app.api.negotiation` says which)."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Literal

from fastapi import File, Header, Query, Request, UploadFile
from fastapi.responses import Response

from app.api.auth import PREDICT_KEY_DOC
from app.api.deps import ModelQuery, PredictorDep, SettingsDep
from app.api.errors import error_responses
from app.api.negotiation import overlay_encoding
from app.api.uploads import UPLOAD_ERRORS_DOC, upload_router
from app.schemas.reading import reading
from app.schemas.serving import CamTarget, GradcamResult, GradcamTiming, ModelIdentity
from app.serving.errors import InvalidInput, ServingError
from app.serving.inputs import read_upload
from app.serving.predictor import CamImage
from app.serving.targets import split_targets
from ml.explain.gradcam import CAM_METHODS
from ml.explain.overlays import DEFAULT_MAX_SIDE, OVERLAY_FORMATS
from ml.trust import InputCheck

router = upload_router()

CamMethod = Literal[tuple(CAM_METHODS)]  # type: ignore[valid-type]
OverlayFormat = Literal["jpeg", "png", "webp"]
MAX_SIDE_LIMIT = 4096  # the largest overlay asked for: 4096 px of RGB is 48 MiB per buffer


@router.post(
    "/gradcam",
    response_model=GradcamResult,
    responses={
        200: {
            "content": {media: {"schema": {"type": "string", "format": "binary"}}
                        for media in OVERLAY_FORMATS.values()},
            "description": "the overlay (JPEG unless the query or `Accept` asks for PNG or WebP), or JSON "
                           "with `format=json`",
        },
        406: {**error_responses(406)[406], "description": "`Accept` refuses JPEG, PNG and WebP alike"},
    },
    description="Without `format`, or with `format=jpeg|png|webp`, answers the overlay of one target at the "
    "upload's size reduced to `max_side` pixels on its longest side (never enlarged), with headers `X-Model`, "
    "`X-Target`, `X-Probability` and `X-Input-Check` (`pass` or `flag`: the input gate's verdict, also on the "
    "JSON answer). The encoding is `format`'s, else the best of image/jpeg, image/png and "
    "image/webp by the `Accept` header, else JPEG (quality 90: a tenth of the PNG's encode time and size for "
    "a 1024 px overlay). `format=json` answers the probabilities and, for each target, the overlay in base64 "
    "(`overlay_base64`, its type in `overlay_media_type`; `overlay_format` picks the encoding, JPEG by "
    "default; with `overlay_format=png` the same text is also in `overlay_png_base64`, as before) and the heat "
    "map as a 16x16 grid." + UPLOAD_ERRORS_DOC + PREDICT_KEY_DOC,
)
async def gradcam(
    request: Request,
    reply: Response,
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
    format_: Annotated[
        Literal["jpeg", "png", "webp", "json"] | None,
        Query(alias="format", description="the overlay itself in this encoding, or json; default: the overlay "
                                          "in the encoding `Accept` prefers (JPEG if it names none)"),
    ] = None,
    overlay_format: Annotated[
        OverlayFormat | None,
        Query(description="the encoding of the overlays in format=json (default jpeg)"),
    ] = None,
    max_side: Annotated[
        int,
        Query(ge=1, le=MAX_SIDE_LIMIT, description="the overlay's longest side in pixels at most; a smaller "
                                                   "upload keeps its size"),
    ] = DEFAULT_MAX_SIDE,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    model: ModelQuery = None,
) -> Response | GradcamResult:
    """Explain a prediction with a class activation map over the X-ray."""
    start = time.perf_counter()
    targets = split_targets(target)
    as_json = format_ == "json"
    encoding = overlay_encoding(format_, overlay_format, accept)
    if not as_json and len(targets) > 1:
        raise InvalidInput(
            f"an image answer gives one overlay; {len(targets)} targets were asked for: use format=json "
            "for several",
            code="too_many_targets",
        )
    sent = len((await request.form()).getlist("file"))  # the parsed form, cached: FastAPI keeps the last
    if sent != 1:
        raise ServingError(f"/gradcam explains one file; {sent} were sent in the field 'file'",
                           code="too_many_files")
    resolved = await predictor.get(model)
    upload = await read_upload(file, index=0, max_bytes=settings.max_upload_bytes)
    result = await predictor.gradcam(resolved.served, upload, targets, method, max_side=max_side, fmt=encoding)
    if not as_json:
        [cam] = result.cams
        return Response(
            cam.overlay,
            media_type=cam.media_type,
            headers={
                "X-Model": resolved.served.record.ref,
                "X-Target": cam.label,
                "X-Probability": f"{cam.probability:.6f}",
                "X-Input-Check": input_check_header(result.prepared.input_check),
                "Vary": "Accept",
            },
        )
    prep = result.prepared
    reply.headers["X-Input-Check"] = input_check_header(prep.input_check)
    return GradcamResult(
        model=ModelIdentity.of(resolved.served.record, resolved.alias),
        filename=prep.name,
        width=prep.width,
        height=prep.height,
        method=method,
        probabilities=result.prediction.probabilities,
        thresholds=result.prediction.thresholds,
        positive=result.prediction.positive,
        **reading(resolved.served, result.prediction, prep.input_check),
        targets=[_cam_target(c) for c in result.cams],
        timing_ms=GradcamTiming(
            decode=round(prep.decode_ms, 2),
            inference=round(result.inference_ms, 2),
            cam=round(result.cam_ms, 2),
            total=round((time.perf_counter() - start) * 1000, 2),
        ),
    )


def input_check_header(check: InputCheck | None) -> str:
    return "flag" if check is not None and not check.in_distribution else "pass"


def _cam_target(cam: CamImage) -> CamTarget:
    text = base64.b64encode(cam.overlay).decode("ascii")
    return CamTarget(label=cam.label, probability=cam.probability, heatmap=cam.grid, overlay_base64=text,
                     overlay_media_type=cam.media_type, overlay_png_base64=text if cam.format == "png" else None)
