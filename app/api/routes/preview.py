"""`POST /preview`: an upload as a PNG a browser can show (DICOM files above all, which browsers cannot)."""

from __future__ import annotations

import io
from typing import Annotated

import numpy as np
from fastapi import File, UploadFile
from fastapi.responses import Response
from PIL import Image

from app.api.auth import PREDICT_KEY_DOC
from app.api.deps import PredictorDep, SettingsDep
from app.api.uploads import UPLOAD_ERRORS_DOC, upload_router
from app.serving.inputs import Upload, decode, read_upload

router = upload_router()

PREVIEW_MAX_SIDE = 1024  # the page shows the image at most this large; a smaller PNG travels faster


def render_preview(upload: Upload, *, max_pixels: int,
                   max_side: int = PREVIEW_MAX_SIDE) -> tuple[bytes, int, int]:
    """The upload decoded as the models read it (windowed, MONOCHROME1 inverted) as an 8-bit grey PNG whose
    longer side is at most `max_side`, and the upload's own width and height."""
    image = decode(upload, max_pixels=max_pixels)
    height, width = image.shape[:2]
    grey = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    grey.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    grey.save(out, format="PNG", compress_level=3)
    return out.getvalue(), int(width), int(height)


@router.post(
    "/preview",
    response_class=Response,
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "the image as a grey PNG, its longer side at most 1024 px"}},
    description="The page shows DICOM uploads through this: the pixels as the models read them (windowed, "
    "MONOCHROME1 inverted), as a PNG no larger than 1024 px a side, with headers `X-Image-Width` and "
    "`X-Image-Height` giving the upload's own size. Bounded like `/predict` (same byte and pixel limits)."
    + UPLOAD_ERRORS_DOC + PREDICT_KEY_DOC,
)
async def preview(
    predictor: PredictorDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="one PNG, JPEG or DICOM X-ray")],
) -> Response:
    """Render an uploaded X-ray as a PNG preview."""
    upload = await read_upload(file, index=0, max_bytes=settings.max_upload_bytes)
    png, width, height = await predictor.pool.run(render_preview, upload, max_pixels=settings.max_image_pixels)
    return Response(png, media_type="image/png",
                    headers={"X-Image-Width": str(width), "X-Image-Height": str(height)})
