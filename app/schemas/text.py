"""Text a caller sends that the registry can store and a JSON answer can echo.

JSON allows `\\u0000` and lone surrogates (`\\ud800`) in strings; PostgreSQL refuses the first in text
columns and no UTF-8 encoder takes the second, so either would surface as a 500 deep in a request.
Request bodies and queries derive from `CallerText`, which refuses both anywhere in the input (keys
included) with a 422 that says where.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


def bad_text(value: Any, where: str = "") -> str | None:
    """Where in `value` (a JSON value) a string holds a NUL or a lone surrogate; None if nowhere."""
    if isinstance(value, str):
        if "\x00" in value:
            return where or "(text)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "(text)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = bad_text(key, f"{where}.{key!r}" if where else repr(key)) if isinstance(key, str) else None
            found = found or bad_text(item, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if found := bad_text(item, f"{where}[{i}]"):
                return found
    return None


class CallerText(BaseModel):
    """A request body or query whose strings hold neither NUL characters nor lone surrogates."""

    @model_validator(mode="before")
    @classmethod
    def _text_the_registry_can_hold(cls, data: Any) -> Any:
        where = bad_text(data)
        if where is not None:
            where = where.encode("ascii", "backslashreplace").decode("ascii")
            raise ValueError(f"{where}: text may not hold NUL characters or lone surrogates")
        return data
