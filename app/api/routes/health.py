"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.api.deps import StateDep
from registry.migrate import schema_is_current

router = APIRouter(prefix="/health", tags=["health"])


class Live(BaseModel):
    status: str = Field("ok", examples=["ok"])


class Ready(BaseModel):
    ready: bool = Field(examples=[True])
    checks: dict[str, bool] = Field(
        examples=[{"registry": True, "schema_current": True, "default model loaded": True}])
    messages: dict[str, str] = Field(default_factory=dict,
                                     examples=[{"default model loaded": "pneumonia -> pneumonia:3"}])


@router.get("/live", response_model=Live)
def live() -> Live:
    """Answer while the process runs."""
    return Live()


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(state: StateDep) -> JSONResponse:
    """Report whether the registry is reachable and its schema current (503 when not, or when draining)."""
    # answered at once while draining: a proxy checks often, and this replica is going away
    if state.drain.draining:
        _, message = state.drain.status()
        body = Ready(ready=False, checks={"not draining": False}, messages={"not draining": message})
        return JSONResponse(body.model_dump(), status_code=503)
    checks: dict[str, bool] = {}
    messages: dict[str, str] = {}
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["registry"] = True
        checks["schema_current"] = schema_is_current(state.db.engine)
        if not checks["schema_current"]:
            messages["schema_current"] = "registry schema is not at the newest migration: run `cxr db upgrade`"
    except Exception as exc:
        checks["registry"] = checks["schema_current"] = False
        messages["registry"] = f"registry unreachable: {type(exc).__name__}"
    for name, check in state.readiness_checks.items():
        ok, message = check()
        checks[name] = ok
        if message:
            messages[name] = message
    body = Ready(ready=all(checks.values()), checks=checks, messages=messages)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)
