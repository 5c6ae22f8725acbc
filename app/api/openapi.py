"""Touches to the generated OpenAPI document so that Swagger UI (`/docs`) can try every route.

FastAPI describes an uploaded file in OpenAPI 3.1 terms, `contentMediaType: application/octet-stream`;
Swagger UI 5 does not read that keyword and shows a text box for a list of files. `format: binary`, the 3.0
way, is what it turns into a file picker (one per item for a list), and it is still valid 3.1.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def binary_uploads(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare every multipart file field of `spec` (in place) as `type: string, format: binary`."""
    schemas = spec.get("components", {}).get("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if not body:
                continue
            schema = body["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            for field in schema.get("properties", {}).values():
                _as_binary(field.get("items", field))
    return spec


def _as_binary(field: dict[str, Any]) -> None:
    if field.get("type") == "string" and "contentMediaType" in field:
        del field["contentMediaType"]
        field["format"] = "binary"


def install_binary_uploads(app: FastAPI) -> None:
    """Have `app.openapi()` answer its document with `binary_uploads` applied (once, when first built)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = binary_uploads(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
