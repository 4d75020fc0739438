"""Evaluate a samples file: run every completion against its problem's tests.

Each sample's result is appended to a per-sample JSONL as soon as it is known, so an
interrupted run resumes where it stopped; the summary (pass@k, verdict counts, the
isolation achieved, provenance) is computed from the whole results file at the end.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.code.passk import pass_at_k
from alignlab.code.problems import HUMANEVAL, Problem, Sample, humaneval_path, load_problems, read_samples
from alignlab.code.sandbox import Executor, Outcome, SandboxConfig, make_executor
from alignlab.core.config import option
from alignlab.core.results import ResultsFile

RESULT_KEY = ("task_id", "completion_id")


@dataclass(frozen=True)
class EvaluateConfig(SandboxConfig):
    """What to evaluate against, and how the sandbox runs it (all sandbox settings apply)."""

    problems: str = option(HUMANEVAL, "problem set: 'humaneval' or a HumanEval-format JSONL path")
    k: tuple[int, ...] = option((1, 10, 100), "pass@k budgets (reported where every task has k samples)")
    executor: str = option("local", "where programs run: local, dask-local, or dask://HOST:PORT")
    chunk_size: int = option(16, "programs per task sent to a Dask worker")

    def sandbox_config(self) -> SandboxConfig:
        """The sandbox part of this config."""
        names = {f.name for f in dataclasses.fields(SandboxConfig)}
        return SandboxConfig(**{name: getattr(self, name) for name in names})


def evaluate(
    samples_path: str | os.PathLike[str],
    results_path: str | os.PathLike[str],
    config: EvaluateConfig | None = None,
    *,
    sandbox: Executor | None = None,
    progress: Callable[[Iterator[Sample], int], Iterator[Sample]] | None = None,
) -> dict[str, Any]:
    """Run every sample in ``samples_path`` not yet in ``results_path``, then summarise.

    Args:
        samples_path: JSONL of ``{"task_id", "completion"}`` (``completion_id`` optional).
        results_path: per-sample results JSONL, appended to (and resumed from).
        config: problem set, k values and sandbox settings.
        sandbox: a running executor (e.g. a :class:`Sandbox`) to use instead of starting one from
            ``config``.
        progress: wraps the iterator of pending samples (given their count), e.g. a progress bar.

    Returns:
        The summary (see :func:`summarize`).

    Raises:
        DataError: the samples or problems file is malformed, or names unknown tasks.
        ConfigError: ``config.executor`` names no executor.
        DependencyError: a Dask executor was asked for and ``dask[distributed]`` is not installed.
        SandboxError: the sandbox could not start.
    """
    config = config or EvaluateConfig()
    problems = load_problems(config.problems)
    samples = read_samples(samples_path, problems)
    results = ResultsFile(results_path, RESULT_KEY)
    pending = [s for s in samples if results.key_of(_key_fields(s)) not in results]
    own = sandbox is None
    runner = (
        sandbox
        if sandbox is not None
        else make_executor(config.executor, config.sandbox_config(), chunk_size=config.chunk_size)
    )
    try:
        if pending:
            stream: Iterator[Sample] = iter(pending)
            if progress is not None:
                stream = progress(stream, len(pending))
            for sample, outcome in _run(runner, problems, stream):
                results.append(result_record(sample, outcome))
        else:
            runner.start()
        isolation = runner.isolation.to_dict() if runner.isolation else None
    finally:
        if own:
            runner.close()
    wanted = {results.key_of(_key_fields(s)) for s in samples}
    records = [r for r in results.records() if results.key_of(r) in wanted]
    return summarize(records, config, samples_path=samples_path, isolation=isolation)


def _run(
    sandbox: Executor, problems: dict[str, Problem], samples: Iterator[Sample]
) -> Iterator[tuple[Sample, Outcome]]:
    taken: list[Sample] = []

    def programs() -> Iterator[Any]:
        for sample in samples:
            taken.append(sample)
            yield problems[sample.task_id].program(sample.completion)

    for index, outcome in enumerate(sandbox.map(programs())):
        yield taken[index], outcome


def _key_fields(sample: Sample) -> dict[str, Any]:
    return {"task_id": sample.task_id, "completion_id": sample.completion_id}


def result_record(sample: Sample, outcome: Outcome) -> dict[str, Any]:
    """One line of the per-sample results file."""
    return {
        "task_id": sample.task_id,
        "completion_id": sample.completion_id,
        "verdict": str(outcome.verdict),
        "passed": outcome.verdict == "passed",
        "detail": outcome.detail,
        "cpu_seconds": outcome.cpu_seconds,
        "wall_seconds": outcome.wall_seconds,
    }


def summarize(
    records: list[dict[str, Any]],
    config: EvaluateConfig,
    *,
    samples_path: str | os.PathLike[str],
    isolation: dict[str, Any] | None,
) -> dict[str, Any]:
    """pass@k, verdict counts, isolation and provenance for per-sample result records."""
    from alignlab.core.provenance import hash_file, make_provenance

    by_task: dict[str, list[bool]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r["task_id"], r["completion_id"])):
        by_task[record["task_id"]].append(bool(record["passed"]))
    verdicts = Counter(record["verdict"] for record in records)
    provenance = make_provenance(
        "code.evaluate",
        {"samples": Path(samples_path), **dataclasses.asdict(config)},
        data_hash=hash_file(samples_path),
        seed=0,  # samples run with random.seed(0) and PYTHONHASHSEED=0
    )
    problems_file = humaneval_path() if config.problems == HUMANEVAL else Path(config.problems)
    return {
        "pass_at_k": pass_at_k(by_task, config.k),
        "samples": len(records),
        "tasks": len(by_task),
        "verdicts": dict(sorted(verdicts.items())),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in records), 3),
        "isolation": isolation,
        "problems_hash": hash_file(problems_file),
        "provenance": provenance.to_dict(),
    }
