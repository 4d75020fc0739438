"""Append-only results files that a rerun resumes without loss or duplicates.

Each record is one JSON line with a key (an item id, or a tuple of fields). A run asks
which keys are done, works on the rest and appends each result as it finishes; every
append is flushed to disk, so a crash loses at most the line being written. Reopening
cuts off that half-written line with a warning and the run carries on.

The guarantees hold within one process (appends are serialised by a lock); two
processes appending to the same file at once can still write the same key twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from alignlab.core.jsonl import dump_line, parse_line, read_jsonl
from alignlab.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")
KeyFunction = Callable[[Mapping[str, Any]], str]


def field_key(*names: str) -> KeyFunction:
    """A key function built from record fields.

    One string field is its own key; anything else is encoded as canonical JSON, so
    ``("a", 1)`` and ``("a", "1")`` stay distinct.

    Args:
        names: the fields that together identify a record.

    Raises:
        ConfigError: no field names were given.
    """
    if not names:
        raise ConfigError("a results key needs at least one field name")

    def key(record: Mapping[str, Any]) -> str:
        values = [record[name] for name in names]
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
        return json.dumps(values if len(values) > 1 else values[0], sort_keys=True, separators=(",", ":"))

    return key


class ResultsFile:
    """An append-only JSON Lines file of results, keyed so a rerun skips finished work.

    Args:
        path: the file; created on the first append if missing.
        key: a function from a record to its key, or the names of the fields that form it.

    Raises:
        DataError: a complete line of the existing file is not a JSON object or lacks the key.
        ConfigError: ``key`` names no fields, or the path names a gzip file (which cannot
            be appended to safely).
    """

    def __init__(self, path: str | os.PathLike[str], key: KeyFunction | str | tuple[str, ...]) -> None:
        self.path = Path(path)
        if self.path.name.endswith(".gz"):
            raise ConfigError(f"{self.path}: a results file must be plain JSON Lines, not gzip")
        if isinstance(key, str):
            key = (key,)
        self._key = field_key(*key) if isinstance(key, tuple) else key
        self._lock = threading.Lock()
        self._done: set[str] = set()
        self.skipped = 0
        """How many appends were skipped because their key was already done."""
        self._load()

    def __len__(self) -> int:
        return len(self._done)

    def __contains__(self, key: object) -> bool:
        return key in self._done

    def key_of(self, record: Mapping[str, Any]) -> str:
        """The key of ``record``.

        Raises:
            ConfigError: the record lacks a field the key is made of.
        """
        try:
            return self._key(record)
        except KeyError as exc:
            raise ConfigError(f"record has no key field {exc}; fields present: {sorted(record)}") from exc

    def done_keys(self) -> set[str]:
        """The keys already in the file (a copy)."""
        with self._lock:
            return set(self._done)

    def records(self) -> list[dict[str, Any]]:
        """Every record in the file, in the order written, keeping the first of any repeated key.

        Raises:
            DataError: the file was corrupted since it was opened.
        """
        seen: set[str] = set()
        kept: list[dict[str, Any]] = []
        with self._lock:
            if not self.path.exists():
                return kept
            for record in read_jsonl(self.path):
                key = self._key(record)
                if key not in seen:
                    seen.add(key)
                    kept.append(record)
        return kept

    def append(self, record: Mapping[str, Any]) -> bool:
        """Write ``record`` as one line and force it to disk, unless its key is already done.

        Returns:
            True if written; False if the key was already done (counted in :attr:`skipped`).

        Raises:
            ConfigError: the record lacks a key field.
            TypeError: the record holds a value JSON cannot encode.
            OSError: the file cannot be written.
        """
        key = self.key_of(record)
        data = dump_line(record).encode("utf-8")
        with self._lock:
            if key in self._done:
                self.skipped += 1
                return False
            with self.path.open("ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._done.add(key)
        return True

    def pending(self, items: Iterable[T], key: Callable[[T], str] | None = None) -> Iterator[T]:
        """Yield the items whose key is not done yet, checked as each item is reached.

        Args:
            items: the work to do.
            key: the key of an item; by default the results key, for items that are records.
        """
        item_key: Callable[[Any], str] = key if key is not None else self.key_of
        for item in items:
            if item_key(item) not in self._done:
                yield item

    def _load(self) -> None:
        if not self.path.exists():
            return
        offset = 0
        repeated = 0
        tail: tuple[bytes, int] | None = None
        with self.path.open("rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                if not raw.endswith(b"\n"):
                    tail = raw, lineno
                    break
                offset += len(raw)
                if raw.strip():
                    repeated += not self._remember(parse_line(raw, self.path, lineno), lineno)
        if repeated:
            logger.warning("%s holds %d repeated keys; keeping the first of each", self.path, repeated)
        if tail is not None:
            self._repair_tail(offset, *tail)

    def _remember(self, record: Mapping[str, Any], lineno: int) -> bool:
        try:
            key = self._key(record)
        except KeyError as exc:
            raise DataError(self.path, lineno, f"record has no key field {exc}") from exc
        if key in self._done:
            return False
        self._done.add(key)
        return True

    def _repair_tail(self, offset: int, raw: bytes, lineno: int) -> None:
        # A last line without its newline is what a crash mid-append leaves behind. A JSON
        # object cannot be valid until its closing brace, so a valid one is complete.
        try:
            record = parse_line(raw, self.path, lineno)
        except DataError as exc:
            logger.warning(
                "%s:%d: cutting off a truncated last line (%d bytes) left by an interrupted write: %s",
                self.path,
                lineno,
                len(raw),
                exc.reason,
            )
            os.truncate(self.path, offset)
            return
        self._remember(record, lineno)
        # Complete but unterminated (e.g. hand-edited): end it so the next append starts a new line.
        with self.path.open("ab") as handle:
            handle.write(b"\n")
