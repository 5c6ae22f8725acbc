"""Who reads an open GET route: an admin key sees server paths and worker identities, anyone else not.

GET routes need no key, so whatever they show, a stranger reads. The registry keeps absolute paths
(what the workers need); `Viewer` shows them to callers without an admin key relative to their data root
or to the artifact store, and hides which host and process runs a job. The key is the one `AccessGate`
checked (`app.api.deps.ViewerDep`); an unknown or revoked key on an open route is simply a stranger (those
routes never answer 401).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.paths import PathView


@dataclass(frozen=True)
class Viewer:
    admin: bool
    paths: PathView  # the data roots and the artifact store

    def location(self, path: str) -> str:
        """A dataset's location: absolute for admins, relative to its data root for others."""
        return path if self.admin else self.paths.path(path)

    def uri(self, uri: str) -> str:
        """An artifact URI: the `file://` URI for admins, the key inside the store for others."""
        return uri if self.admin else self.paths.path(uri)

    def value(self, value: Any) -> Any:
        """A stored JSON value (options, a run's config) with its paths shown to this viewer."""
        return value if self.admin else self.paths.value(value)

    def text(self, message: str) -> str:
        """Free text that may quote server paths (an exception's message)."""
        return message if self.admin else self.paths.text(message)

    def worker(self, worker: str | None) -> str | None:
        """The host:pid holding a job, for admins only."""
        return worker if self.admin else None


@functools.lru_cache(maxsize=8)
def path_view(roots: tuple[Path, ...]) -> PathView:
    """The path view of the data roots and the artifact store (built once per set of roots)."""
    return PathView(roots)
