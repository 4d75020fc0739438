from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from alignlab.core.results import ResultsFile, field_key
from alignlab.errors import ConfigError, DataError

ITEMS = [{"id": f"q{n}", "prompt": f"question {n}"} for n in range(6)]


def answer(item: dict[str, str]) -> dict[str, str]:
    return {"id": item["id"], "answer": item["prompt"].upper()}


def test_append_writes_once_and_skips_repeats_countably(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl", "id")
    assert results.append({"id": "a", "v": 1}) is True
    assert results.append({"id": "a", "v": 2}) is False
    assert results.skipped == 1
    assert results.records() == [{"id": "a", "v": 1}]
    assert results.done_keys() == {"a"}


def test_reopen_sees_done_keys(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = ResultsFile(path, "id")
    for item in ITEMS[:3]:
        first.append(answer(item))
    again = ResultsFile(path, "id")
    assert again.done_keys() == {"q0", "q1", "q2"}
    assert [item["id"] for item in again.pending(ITEMS)] == ["q3", "q4", "q5"]


def test_crash_mid_write_then_resume_gives_exact_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "r.jsonl"
    results = ResultsFile(path, "id")
    for item in ITEMS[:4]:
        results.append(answer(item))
    # Simulate a crash while the fourth line was being written: half of it reached disk.
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])

    with caplog.at_level(logging.WARNING, logger="alignlab.core.results"):
        resumed = ResultsFile(path, "id")
    assert "truncated last line" in caplog.text
    assert resumed.done_keys() == {"q0", "q1", "q2"}
    for item in resumed.pending(ITEMS):
        resumed.append(answer(item))
    for item in ITEMS:  # a second full pass must add nothing
        resumed.append(answer(item))

    assert ResultsFile(path, "id").records() == [answer(item) for item in ITEMS]
    assert len(path.read_bytes().splitlines()) == len(ITEMS)


def test_complete_but_unterminated_last_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}')
    results = ResultsFile(path, "id")
    assert results.done_keys() == {"a", "b"}
    results.append({"id": "c"})
    assert [r["id"] for r in results.records()] == ["a", "b", "c"]


def test_malformed_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(DataError, match=r"r\.jsonl:2: invalid JSON"):
        ResultsFile(path, "id")


def test_line_without_key_field_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n{"name": "b"}\n')
    with pytest.raises(DataError, match=r"r\.jsonl:2: record has no key field 'id'"):
        ResultsFile(path, "id")


def test_append_without_key_field_is_a_config_error(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl", ("model", "id"))
    with pytest.raises(ConfigError, match="'model'"):
        results.append({"id": "a"})
    assert not (tmp_path / "r.jsonl").exists()


def test_tuple_key_distinguishes_types_and_fields(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl", ("model", "n"))
    assert results.append({"model": "m", "n": 1})
    assert results.append({"model": "m", "n": "1"})
    assert results.append({"model": "m", "n": 2})
    assert not results.append({"model": "m", "n": 1, "extra": True})
    assert len(results) == 3


def test_key_function_and_pending_with_item_key(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl", lambda record: f"{record['task']}/{record['i']}")
    results.append({"task": "t", "i": 0})
    todo = list(results.pending(range(3), key=lambda i: f"t/{i}"))
    assert todo == [1, 2]


def test_field_key_needs_a_field() -> None:
    with pytest.raises(ConfigError):
        field_key()


def test_gzip_results_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gzip"):
        ResultsFile(tmp_path / "r.jsonl.gz", "id")


def test_concurrent_appends_write_each_key_once(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "r.jsonl", "id")
    written: list[bool] = []

    def worker() -> None:
        for n in range(50):
            written.append(results.append({"id": str(n)}))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert written.count(True) == 50
    assert results.skipped == 150
    assert sorted(int(r["id"]) for r in ResultsFile(tmp_path / "r.jsonl", "id").records()) == list(range(50))
    assert len((tmp_path / "r.jsonl").read_bytes().splitlines()) == 50
