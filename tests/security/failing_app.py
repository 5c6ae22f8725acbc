"""An app with a route that fails by a bug, behind the API's own last net (`UnhandledErrors`), for
tests/security/test_catch_all.py to serve with uvicorn."""

from __future__ import annotations

from fastapi import FastAPI

from app.api.errors import UnhandledErrors, install_error_handlers


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(UnhandledErrors)
    install_error_handlers(app)

    @app.get("/bug")
    def bug() -> dict[str, str]:
        raise ZeroDivisionError("a bug, not an input error")

    @app.get("/fine")
    def fine() -> dict[str, str]:
        return {"status": "ok"}

    return app
