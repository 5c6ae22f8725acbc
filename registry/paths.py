"""Server paths as strangers see them: relative to the folder they live in, never absolute.

The registry stores what the workers need (a dataset's real `location`, a checkpoint's `file://` URI,
a run's `data_root`); the API shows callers without an admin key the same values relative to their data
root or to the artifact store, and the workers write job errors through `public_text`, so neither the
layout of the server nor a path outside its folders reaches an open route.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

# An absolute POSIX path or a file:// URI inside free text: starts after a space, quote or bracket and runs
# to the next one (a path with spaces is cut short, which only ever hides more).
_PATH_IN_TEXT = re.compile(r"(?<![\w/.~:-])(?:file://)?/[^\s'\"`,;()\[\]{}<>|]*")


class PathView:
    """Shows absolute paths relative to the first of `roots` that holds them, else as their last part.

    Each root is matched as configured and as resolved (a root reached through a link is recognised by
    either spelling); nothing here touches the file system after construction.
    """

    def __init__(self, roots: Sequence[str | Path]) -> None:
        spellings: list[PurePosixPath] = []
        for root in roots:
            for form in (Path(root).absolute(), Path(root).resolve()):
                if PurePosixPath(form) not in spellings:
                    spellings.append(PurePosixPath(form))
        # the longest first, so a root nested in another is matched by itself
        self.roots = sorted(spellings, key=lambda p: len(p.parts), reverse=True)

    def path(self, path: str | Path) -> str:
        """`path` relative to its root (`.` for the root itself), or its last part outside every root."""
        text = str(path)
        if text.startswith("file://"):
            text = unquote(urlparse(text).path)
        given = PurePosixPath(text)
        if not given.is_absolute():
            return text
        for root in self.roots:
            if given.is_relative_to(root):
                return str(given.relative_to(root))
        return given.name or "."

    def text(self, message: str) -> str:
        """`message` with every absolute path or file:// URI in it shown by `path`."""
        return _PATH_IN_TEXT.sub(lambda m: self.path(m.group(0)), message)

    def value(self, value: Any) -> Any:
        """A JSON value with every string that is an absolute path or file:// URI shown by `path`."""
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, str) and (value.startswith("/") or value.startswith("file://")):
            return self.path(value)
        return value


def public_text(message: str, roots: Sequence[str | Path]) -> str:
    """`message` with its server paths shown relative to `roots` (see `PathView.text`)."""
    return PathView(roots).text(message)
