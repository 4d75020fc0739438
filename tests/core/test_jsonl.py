from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from alignlab.core.jsonl import append_jsonl, read_jsonl, write_jsonl
from alignlab.errors import DataError

RECORDS: list[dict[str, Any]] = [
    {"id": "a", "text": "héllo\nworld"},
    {"id": "b", "score": 0.5},
    {"id": "c", "tags": []},
]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    assert write_jsonl(path, RECORDS) == 3
    assert list(read_jsonl(path)) == RECORDS
    # A newline inside a value must not split the record across lines.
    assert len(path.read_bytes().splitlines()) == 3


def test_gz_name_writes_gzip_that_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl.gz"
    write_jsonl(path, RECORDS)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert list(read_jsonl(path)) == RECORDS


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "misnamed.jsonl"
    path.write_bytes(gzip.compress(b'{"x": 1}\n'))
    assert list(read_jsonl(path)) == [{"x": 1}]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('\n{"x": 1}\n   \n\n{"x": 2}\n')
    assert list(read_jsonl(path)) == [{"x": 1}, {"x": 2}]


def test_bad_line_in_gz_file_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"x": 1}\n{"x": 2}\n{"x": \n{"x": 4}\n'))
    reader = read_jsonl(path)
    assert next(reader) == {"x": 1}
    assert next(reader) == {"x": 2}
    with pytest.raises(DataError) as caught:
        next(reader)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: invalid JSON: Expecting value")


def test_line_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"x": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"data\.jsonl:2: expected a JSON object, got an array"):
        list(read_jsonl(path))


def test_invalid_utf8_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"x": "\xff"}\n')
    with pytest.raises(DataError, match=":1: not UTF-8"):
        list(read_jsonl(path))


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(b"".join(b'{"n": %d}\n' % n for n in range(1000)))
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="corrupt gzip"):
        list(read_jsonl(path))


def test_missing_file_raises_at_call_time(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(DataError) as caught:
        read_jsonl(path)
    assert caught.value.line is None
    assert str(caught.value) == f"{path}: no such file"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    write_jsonl(path, RECORDS)
    with pytest.raises(TypeError):
        write_jsonl(path, [{"ok": 1}, {"bad": object()}])
    assert list(read_jsonl(path)) == RECORDS
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_write_respects_umask_like_a_normal_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "data.jsonl", RECORDS)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data.jsonl").stat().st_mode) == 0o644


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl.gz", RECORDS)
    write_jsonl(tmp_path / "b.jsonl.gz", RECORDS)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz"])
def test_append_adds_records_in_order(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    for record in RECORDS:
        append_jsonl(path, record)
    assert list(read_jsonl(path)) == RECORDS


def test_append_rejects_non_mapping_without_touching_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with pytest.raises(TypeError, match="mapping"):
        append_jsonl(path, [1, 2])  # type: ignore[arg-type]
    assert not path.exists()


def test_written_lines_are_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    write_jsonl(path, RECORDS)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == RECORDS


def test_utf8_byte_order_mark_on_first_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"x": 1}\n{"x": 2}\n')
    assert list(read_jsonl(path)) == [{"x": 1}, {"x": 2}]
