"""The artifact store: where checkpoints, plots and reports live, addressed by URI.

`LocalArtifactStore` keeps files under a folder and names them `file:///abs/path`; workers on other
hosts share that folder (a volume mounted at the same path). Another store (an object store, say)
implements the same four methods for its own URI scheme. Reads can check the sha256 the registry
recorded, so a corrupted or swapped file is refused rather than used. Error messages name an artifact
by its key inside the store, never by its absolute path: API answers quote them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from registry.errors import IntegrityFailure, NotFound
from registry.paths import PathView


class OutsideStore(IntegrityFailure, ValueError):
    """A URI (or a link inside the store) that leads out of it: never read, whatever the registry says."""


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    size_bytes: int
    sha256: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _safe_key(key: str) -> PurePosixPath:
    """A relative key without '..' or absolute parts (keys come from code, never from uploads)."""
    p = PurePosixPath(key)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"invalid artifact key '{key}'")
    return p


class LocalArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._view = PathView([self.root])

    def key_of(self, uri: str) -> str:
        """How messages name an artifact: its key inside the store (a URI outside it: its last part)."""
        return self._view.path(uri)

    def uri_for(self, key: str) -> str:
        return (self.root / _safe_key(key)).as_uri()

    def path_of(self, uri: str) -> Path:
        """The local file of `uri`, which must lie inside this store."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"not a local artifact URI: {self.key_of(uri)}")
        path = Path(unquote(parsed.path)).resolve()  # follows links: a link in the store may point elsewhere
        if not path.is_relative_to(self.root):
            raise OutsideStore(f"artifact '{self.key_of(uri)}' lies outside the store: refused")
        return path

    def put_file(self, local: Path, key: str) -> StoredArtifact:
        """Copy `local` into the store atomically and return its URI, size and sha256."""
        dest = self.root / _safe_key(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(local).resolve() != dest:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            os.close(fd)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredArtifact(dest.as_uri(), dest.stat().st_size, sha256_file(dest))

    def read_bytes(self, uri: str, *, sha256: str | None = None) -> bytes:
        """The artifact's bytes; with `sha256`, IntegrityFailure unless they match."""
        path = self.path_of(uri)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact '{self.key_of(uri)}' is missing from the store") from None
        if sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise IntegrityFailure(f"artifact '{self.key_of(uri)}' has sha256 {actual[:12]}..., the registry recorded "
                                       f"{sha256[:12]}...: the file was changed or replaced")
        return data

    def exists(self, uri: str) -> bool:
        return self.path_of(uri).is_file()


def artifact_store(root: str) -> LocalArtifactStore:
    """The store for a configured root (a folder; other schemes are refused with a clear message)."""
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"artifact store '{root}' is not supported here: use a folder shared by API and workers")
    return LocalArtifactStore(unquote(urlparse(root).path) if root.startswith("file://") else root)
