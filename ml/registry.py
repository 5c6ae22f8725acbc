"""A registry of named entries: the model entrypoints (`ml.models.factory`) and the dataset adapters
(`ml.data.factory`) each keep one.

Names are stable ids stored in the registry database, so a renamed entry keeps its old name working through
an alias, with a warning. Family modules register their entries when they are imported, and each package's
`__init__` imports its families by name, so what is registered is written down in one place. (The idea is
timm's `_registry.py`: a small module that entry files import, never one that imports them.)
"""

from __future__ import annotations

import warnings
from typing import Generic, TypeVar

from ml.errors import CXRError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, error: type[CXRError]) -> None:
        self.kind, self.error = kind, error  # "model" / "dataset"; what an unknown name raises
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, entry: T, description: str = "") -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        self._descriptions[name] = description

    def alias(self, old: str, new: str) -> None:
        """Keep a renamed entry's old name working (with a warning)."""
        self._aliases[old] = new

    def resolve(self, name: str) -> str:
        """The registered name `name` stands for; `self.error` naming the known ones when there is none."""
        if name in self._aliases:
            warnings.warn(f"{self.kind} '{name}' was renamed to '{self._aliases[name]}'", DeprecationWarning,
                          stacklevel=3)
            name = self._aliases[name]
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        return name

    def get(self, name: str) -> T:
        return self._entries[self.resolve(name)]

    def describe(self, name: str) -> str:
        return self._descriptions[self.resolve(name)]

    def names(self) -> list[str]:
        return sorted(self._entries)
