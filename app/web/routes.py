"""The page, the samples it offers, and Swagger UI served from the app itself (no CDN, works offline).

Swagger UI's JS and CSS come from the `fastapi-offline` package's static folder (Swagger UI 5, which reads
OpenAPI 3.1); the page's own files live in `static/` beside this module.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from app.api.deps import SettingsDep
from app.api.errors import ApiError, error_responses

STATIC_DIR = Path(__file__).resolve().parent / "static"
SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
DOCS_ASSETS = "/docs-assets"

router = APIRouter()


class Sample(BaseModel):
    name: str = Field(examples=["nih_cxr_1024.png"])
    url: str = Field(examples=["/samples/nih_cxr_1024.png"])
    size_bytes: int = Field(examples=[455175])  # the shipped nih_cxr_1024.png


def _samples(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in SAMPLE_SUFFIXES
    }


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/samples", response_model=list[Sample], tags=["web"])
def list_samples(settings: SettingsDep) -> list[Sample]:
    """List the bundled sample X-rays the web page offers."""
    return [
        Sample(name=name, url=f"/samples/{name}", size_bytes=path.stat().st_size)
        for name, path in _samples(settings.samples_dir).items()
    ]


@router.get(
    "/samples/{name}",
    response_class=FileResponse,
    tags=["web"],
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, **error_responses(
        404, examples={404: ("not_found", "no sample named 'x.png': GET /samples lists them")})},
)
def get_sample(name: str, settings: SettingsDep) -> FileResponse:
    """Download one bundled sample X-ray by the name `/samples` lists."""
    path = _samples(settings.samples_dir).get(name)  # only listed names: the request never builds a path
    if path is None:
        raise ApiError(404, "not_found", f"no sample named '{name}': GET /samples lists them")
    return FileResponse(path)


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - API docs</title>
  <link rel="icon" href="{assets}/favicon.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <script src="{assets}/swagger-ui-bundle.js" defer></script>
  <script src="/static/docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
</body>
</html>
"""


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI, started by a script file of ours rather than an inline one, so the page's
    Content-Security-Policy needs no 'unsafe-inline' for scripts (see app.api.headers)."""
    app = request.app
    return HTMLResponse(DOCS_PAGE.format(title=html.escape(app.title), assets=DOCS_ASSETS,
                                         openapi_url=html.escape(app.openapi_url or "/openapi.json")))


def install_static(app: FastAPI) -> None:
    """Serve the page's files and Swagger UI's."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(
        DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets"
    )
