"""Name → object registries with lazy ``"module:attr"`` targets.

A registry maps short names to either objects or import strings, so nothing heavy is
imported until a name is used; a wrong name gets a "did you mean …?" answer.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Generic, TypeVar, cast

from alignlab.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of named objects of one kind.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"model backend"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, target: T | str) -> None:
        """Register ``target`` (an object, or a lazy ``"module:attr"`` string) under ``name``.

        Raises:
            ConfigError: the name is already taken.
        """
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """The object registered under ``name``, importing it on first use.

        Raises:
            UnknownNameError: no such name; the error suggests the closest one.
        """
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1, cutoff=0.5)
            raise UnknownNameError(self.kind, name, self.names(), close[0] if close else None)
        target = self._entries[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            resolved = cast(T, getattr(importlib.import_module(module_name), attr))
            self._entries[name] = resolved
            return resolved
        return target
