"""Pick one of several samples per problem without running its tests, and score the pick.

Chen et al. (2021, section 3.3) rank samples by mean token log-probability when only
one may be submitted. Each ranker here returns, for one task's samples, the probability
that its pick passes (ties are split evenly), so pass@1 under a ranker is the mean over
tasks. ``random`` is the expectation of a uniform pick (which equals unbiased pass@1);
``oracle`` picks a passing sample whenever there is one (the ceiling).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.code.problems import numbered_records
from alignlab.core.registry import Registry
from alignlab.errors import DataError


@dataclass(frozen=True)
class Candidate:
    """One evaluated sample, as rankers see it."""

    mean_logprob: float
    sum_logprob: float
    passed: bool


Ranker = Callable[[Sequence[Candidate]], float]
"""The probability that the ranker's pick among a task's samples passes."""


def _best_by(key: Callable[[Candidate], float]) -> Ranker:
    def ranker(candidates: Sequence[Candidate]) -> float:
        best = max(key(c) for c in candidates)
        tied = [c for c in candidates if key(c) == best]
        return sum(c.passed for c in tied) / len(tied)

    return ranker


RANKERS: Registry[Ranker] = Registry("ranker")
RANKERS.register("mean_logprob", _best_by(lambda c: c.mean_logprob))
RANKERS.register("sum_logprob", _best_by(lambda c: c.sum_logprob))
RANKERS.register("random", lambda cs: sum(c.passed for c in cs) / len(cs))
RANKERS.register("oracle", lambda cs: float(any(c.passed for c in cs)))


def pass_at_1_by_ranker(
    tasks: Mapping[str, Sequence[Candidate]],
    rankers: Iterable[str] = ("mean_logprob", "sum_logprob", "random", "oracle"),
) -> dict[str, float]:
    """Mean over tasks of the chance each ranker's pick passes.

    Raises:
        UnknownNameError: a ranker name is not registered.
    """
    chosen = {name: RANKERS.get(name) for name in rankers}
    if not tasks:
        return {name: 0.0 for name in chosen}
    return {name: sum(rank(c) for c in tasks.values()) / len(tasks) for name, rank in chosen.items()}


def join(
    samples_path: str | os.PathLike[str], results_path: str | os.PathLike[str]
) -> dict[str, list[Candidate]]:
    """Per task, the samples (with log-probs) joined with their evaluation results.

    Raises:
        DataError: a sample lacks log-probs, or has no result (evaluate it first).
    """
    samples_path, results_path = Path(samples_path), Path(results_path)
    verdicts: dict[tuple[str, int], bool] = {}
    for _, record in numbered_records(results_path):
        verdicts[(record["task_id"], int(record["completion_id"]))] = bool(record["passed"])
    tasks: dict[str, list[Candidate]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    for lineno, record in numbered_records(samples_path):
        task_id = str(record.get("task_id"))
        given = record.get("completion_id")
        index = given if isinstance(given, int) else seen[task_id]
        seen[task_id] = max(seen[task_id], index) + 1
        if not isinstance(record.get("mean_logprob"), int | float):
            raise DataError(
                samples_path, lineno, "sample has no 'mean_logprob'; rank samples drawn by `sample`"
            )
        if (task_id, index) not in verdicts:
            raise DataError(
                samples_path, lineno, f"{task_id} #{index} has no result in {results_path}; evaluate first"
            )
        tasks[task_id].append(_candidate(record, verdicts[(task_id, index)]))
    return dict(tasks)


def _candidate(record: Mapping[str, Any], passed: bool) -> Candidate:
    return Candidate(float(record["mean_logprob"]), float(record["sum_logprob"]), passed)
