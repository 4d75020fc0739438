"""Provenance: what produced a result, from what data, with which code and seed.

Every result record carries a :class:`Provenance` so a number can be traced back to the
component and arguments that made it, a hash of the data it saw, the package version
and the seed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a result came from.

    Attributes:
        component: the registry name (or dotted path) of what produced the result.
        arguments: the arguments it was built or called with, as JSON-able values.
        data_hash: ``"sha256:<hex>"`` of the input data, when there was any.
        package_version: the alignlab version.
        seed: the random seed, when one was used.
        created_at: when, as ISO-8601 in UTC.
        python: the Python version.
        platform: the operating system and machine.
    """

    component: str
    arguments: dict[str, Any]
    data_hash: str | None
    package_version: str
    seed: int | None
    created_at: str
    python: str
    platform: str

    def to_dict(self) -> dict[str, Any]:
        """The provenance as a plain JSON-able dict (a deep copy)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild a provenance from :meth:`to_dict` output.

        Raises:
            TypeError: a field is missing or unknown.
        """
        return cls(**data)


def make_provenance(
    component: str,
    arguments: Mapping[str, Any],
    *,
    data_hash: str | None = None,
    seed: int | None = None,
) -> Provenance:
    """Record the provenance of a result made now by ``component``.

    Args:
        component: the registry name (or dotted path) of what produced the result.
        arguments: its arguments; paths, enums, dataclasses, sets and the like are
            converted to JSON-able forms (see :func:`to_jsonable`).
        data_hash: ``"sha256:<hex>"`` of the input data (see :func:`hash_file`, :func:`hash_records`).
        seed: the random seed, when one was used.
    """
    from alignlab import __version__

    return Provenance(
        component=component,
        arguments={str(name): to_jsonable(value) for name, value in arguments.items()},
        data_hash=data_hash,
        package_version=__version__,
        seed=seed,
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
    )


def to_jsonable(value: Any) -> Any:
    """A JSON-able form of ``value``, for recording arguments.

    Paths become strings, enums their values, dataclasses dicts of their fields, tuples
    and sets lists (sets sorted, so equal sets record equally), dates ISO strings,
    classes and functions ``"module:qualname"``; anything else its ``repr``.
    """
    # Enums first: an IntEnum or StrEnum would otherwise pass as a plain int or str.
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(item) for item in value), key=_canonical)
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return f"{value.__module__}:{value.__qualname__}"
    return repr(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_records(records: Iterable[Any]) -> str:
    """Hash a sequence of JSON-able records, independent of each object's key order.

    Each record is encoded as canonical JSON (sorted keys, compact separators), so the
    same data hashes the same however its dicts were built; the order of the records
    themselves does count.

    Args:
        records: JSON-able values, usually dicts.

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        TypeError: a record holds a value JSON cannot encode.
    """
    digest = hashlib.sha256()
    for record in records:
        digest.update(_canonical(record).encode("utf-8"))
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"


def hash_file(path: str | os.PathLike[str]) -> str:
    """Hash a file's bytes, reading it in chunks so any size fits in memory.

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
