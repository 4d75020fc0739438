"""Sample, evaluate, rank and report in one go, into one folder, resumably.

The folder holds ``samples.jsonl`` (appended to by :func:`~alignlab.code.sampling.sample`),
``results.jsonl`` (appended to by :func:`~alignlab.code.evaluate.evaluate`), and the
``summary.json`` and ``report.html`` rewritten from them at the end. A rerun draws only
the samples that are missing and runs only the samples without a result, so an
interrupted run goes on where it stopped, and a larger ``--n`` or ``--limit`` extends the
folder rather than starting over.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from alignlab.code.evaluate import EvaluateConfig
from alignlab.code.sampling import SampleConfig
from alignlab.core.config import option
from alignlab.models.base import Backend

T = TypeVar("T")
Progress = Callable[[str], Callable[[Iterator[Any], int], Iterator[Any]] | None]

SAMPLES = "samples.jsonl"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"


@dataclass(frozen=True)
class RunConfig(EvaluateConfig, SampleConfig):
    """Everything :func:`run`'s stages need: sampling, sandbox, evaluation and ranking settings."""

    rankers: tuple[str, ...] = option(
        ("mean_logprob", "sum_logprob", "random", "oracle"), "rankers to compare by pass@1"
    )

    def sample_config(self) -> SampleConfig:
        """The sampling part of this config."""
        return SampleConfig(**_fields_of(self, SampleConfig))

    def evaluate_config(self) -> EvaluateConfig:
        """The evaluation (and sandbox) part of this config."""
        return EvaluateConfig(**_fields_of(self, EvaluateConfig))


def _fields_of(config: object, cls: type[T]) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _no_progress(name: str) -> None:
    return None


def run(
    config: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    backend: Backend | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Draw samples, evaluate them, rank them and write the report, reusing what ``out_dir`` holds.

    Args:
        config: the settings of every stage.
        out_dir: the run's folder (created if missing).
        backend: the model to sample from, instead of loading ``config.model``.
        progress: given a stage name, a wrapper for that stage's iterator (e.g. a progress bar).

    Returns:
        The evaluation summary, with ``pass_at_1_by_ranker`` and the paths written under ``files``.

    Raises:
        AlignlabError: a stage failed (see :func:`~alignlab.code.sampling.sample`,
            :func:`~alignlab.code.evaluate.evaluate`, :func:`~alignlab.code.ranking.join`,
            :func:`~alignlab.code.report.write_report`).
    """
    from alignlab.code.evaluate import evaluate
    from alignlab.code.problems import load_problems
    from alignlab.code.ranking import join, pass_at_1_by_ranker
    from alignlab.code.report import write_report
    from alignlab.code.sampling import sample

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    samples, results = folder / SAMPLES, folder / RESULTS
    problems = list(load_problems(config.problems).values())[: config.limit]
    if backend is None:
        from alignlab.models import load_backend

        backend = load_backend(config.model)
    stage = progress or _no_progress
    sample(backend, problems, config.sample_config(), samples, progress=stage("sampling"))
    summary = evaluate(samples, results, config.evaluate_config(), progress=stage("evaluating"))
    summary["pass_at_1_by_ranker"] = pass_at_1_by_ranker(join(samples, results), config.rankers)
    summary["files"] = {name: str(folder / name) for name in (SAMPLES, RESULTS, SUMMARY, REPORT)}
    (folder / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    write_report(
        folder / REPORT,
        summary,
        results,
        summary["pass_at_1_by_ranker"],
        title=f"alignlab code run: {backend.name} on {config.problems}",
    )
    return summary
