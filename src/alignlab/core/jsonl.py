"""JSON Lines files: one JSON object per line, plain or gzip-compressed.

Reading names the file and line of anything malformed; writing is atomic, so a reader
never sees half a file.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from alignlab.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

_JSON_TYPE_NAMES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the gzip magic bytes (whatever its name says).

    Raises:
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def parse_line(text: str | bytes, path: str | Path, lineno: int) -> dict[str, Any]:
    """Parse one line as a JSON object.

    Args:
        text: the line, with or without its newline.
        path: the file it came from, for the error message.
        lineno: its 1-based line number, for the error message.

    Raises:
        DataError: the line is not valid JSON, or is valid JSON but not an object.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, lineno, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, lineno, f"not UTF-8 text: {exc.reason}") from exc
    if not isinstance(value, dict):
        kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        raise DataError(path, lineno, f"expected a JSON object, got {kind}")
    return value


def dump_line(record: Mapping[str, Any]) -> str:
    """Encode one record as a JSON line, newline included.

    Raises:
        TypeError: the record is not a mapping or holds a value JSON cannot encode.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a JSON Lines record must be a mapping, got {type(record).__name__}")
    # json.dumps only knows dict, not every Mapping; it escapes newlines, so one record is one line.
    return json.dumps(dict(record), ensure_ascii=False) + "\n"


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the objects of a ``.jsonl`` or ``.jsonl.gz`` file, skipping blank lines.

    Gzip is recognised by the file's first bytes, so a compressed file with a plain name
    (or the reverse) still reads.

    Args:
        path: the file.

    Raises:
        DataError: the file does not exist (raised at once, before iteration), cannot be
            read or decompressed, or a line is not a JSON object (names ``path:line``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "no such file")
    return _iter_objects(path)


def _iter_objects(path: Path) -> Iterator[dict[str, Any]]:
    lineno = 0
    try:
        with _open_binary(path) as handle:
            for lineno, raw in enumerate(handle, 1):
                line = raw.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else raw
                if line.strip():
                    yield parse_line(line, path, lineno)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # A truncated gzip stream surfaces as EOFError after the last complete line.
        raise DataError(path, lineno + 1, f"corrupt gzip data: {exc}") from exc
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror or exc}") from exc


def _open_binary(path: Path) -> contextlib.AbstractContextManager[Iterable[bytes]]:
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """Write records to a JSON Lines file atomically, gzip-compressed when the name ends in ``.gz``.

    The records go to a temporary file in the same folder, which then replaces ``path``
    in one step: a crash leaves either the old file or the new one, never a mix.

    Args:
        path: the file to create or replace.
        records: the objects to write, one per line.

    Returns:
        The number of records written.

    Raises:
        TypeError: a record is not a mapping or holds a value JSON cannot encode
            (``path`` is then left untouched).
        OSError: the folder is not writable.
    """
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any new file;
    # tempfile.mkstemp would leave the result readable by its owner only.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            count = _write_records(raw, records, compress=target.name.endswith(".gz"))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return count


def _write_records(raw: IO[bytes], records: Iterable[Mapping[str, Any]], *, compress: bool) -> int:
    count = 0
    # mtime=0 keeps the gzip header free of a timestamp, so equal records give equal bytes.
    sink = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else contextlib.nullcontext(raw)
    with sink as out:
        for record in records:
            out.write(dump_line(record).encode("utf-8"))
            count += 1
    return count


def append_jsonl(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record to a JSON Lines file, creating it if needed.

    A ``.gz`` name appends a new gzip member, which :func:`read_jsonl` reads as one stream.

    Args:
        path: the file.
        record: the object to append.

    Raises:
        TypeError: the record is not a mapping or holds a value JSON cannot encode.
        OSError: the file cannot be written.
    """
    data = dump_line(record).encode("utf-8")
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "ab") as handle:
        handle.write(data)
