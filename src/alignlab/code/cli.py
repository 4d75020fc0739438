"""The ``alignlab code`` commands: evaluate samples (``eval``), draw samples, rank them.

Mounted by the main command line as ``alignlab code``; each command imports its
machinery when it runs. Errors are :class:`alignlab.errors.AlignlabError` s, which the
main command line prints without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from alignlab.code.evaluate import EvaluateConfig
from alignlab.code.pipeline import RunConfig
from alignlab.code.sampling import SampleConfig
from alignlab.core.aliases import renamed_command
from alignlab.core.config import typer_command

T = TypeVar("T")

app = typer.Typer(
    help="Evaluate generated code against unit tests (HumanEval and alike).", no_args_is_help=True
)


def _bar(description: str) -> Any:
    from alignlab.core.progress import track

    def wrap(items: Iterator[T], total: int) -> Iterator[T]:
        return track(items, description, total=total)

    return wrap


def _emit(summary: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(summary, indent=2)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


@app.command("eval")
@typer_command(EvaluateConfig)
def evaluate_command(
    config: EvaluateConfig,
    samples: Annotated[Path, typer.Option(help="samples JSONL: {task_id, completion} per line")],
    results: Annotated[
        Path | None, typer.Option(help="per-sample results JSONL, resumed if present [SAMPLES_results.jsonl]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="also write the summary JSON here")] = None,
    report: Annotated[
        Path | None, typer.Option(help="also write an HTML report (pass@k curve, rankers) here")
    ] = None,
) -> None:
    """Run every sample against its problem's tests in the sandbox; print the summary (pass@k)."""
    from alignlab.code.evaluate import evaluate

    results = results or samples.with_name(samples.name.removesuffix(".jsonl") + "_results.jsonl")
    summary = evaluate(samples, results, config, progress=_bar("evaluating"))
    _emit(summary, out)
    if report is not None:
        _report(report, summary, samples, results)


def _report(path: Path, summary: dict[str, Any], samples: Path, results: Path) -> None:
    from alignlab.code.ranking import join, pass_at_1_by_ranker
    from alignlab.code.report import write_report
    from alignlab.errors import DataError

    try:
        ranking: dict[str, float] | None = pass_at_1_by_ranker(join(samples, results))
    except DataError:
        ranking = None  # samples without log-probs (not drawn by `sample`) cannot be ranked
    write_report(path, summary, results, ranking)
    typer.echo(f"wrote the report to {path}", err=True)


# The command's name before one-name-per-command; kept hidden for one release.
app.command("evaluate", hidden=True)(renamed_command(evaluate_command, "evaluate", "eval"))


@app.command("sample")
@typer_command(SampleConfig)
def sample_command(
    config: SampleConfig,
    out: Annotated[Path, typer.Option(help="samples JSONL to append to (a rerun resumes)")],
) -> None:
    """Draw N samples per problem from a model, with token log-probs."""
    from alignlab.code.problems import load_problems
    from alignlab.code.sampling import sample
    from alignlab.models import load_backend

    problems = list(load_problems(config.problems).values())[: config.limit]
    written = sample(load_backend(config.model), problems, config, out, progress=_bar("sampling"))
    typer.echo(f"wrote {written} new samples to {out}", err=True)


@app.command("rank")
def rank_command(
    samples: Annotated[Path, typer.Option(help="samples JSONL drawn by `alignlab code sample`")],
    results: Annotated[Path, typer.Option(help="their per-sample results from `alignlab code eval`")],
    ranker: Annotated[
        list[str] | None,
        typer.Option(help="rankers to compare (repeat): mean_logprob, sum_logprob, random, oracle"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="also write the comparison JSON here")] = None,
) -> None:
    """pass@1 when one sample per problem is picked by each ranker."""
    from alignlab.code.ranking import join, pass_at_1_by_ranker

    tasks = join(samples, results)
    names = ranker or ["mean_logprob", "sum_logprob", "random", "oracle"]
    _emit({"tasks": len(tasks), "pass@1": pass_at_1_by_ranker(tasks, names)}, out)


@app.command("run")
@typer_command(RunConfig)
def run_command(
    config: RunConfig,
    out: Annotated[Path, typer.Option(help="the run's folder; a rerun reuses what it holds")],
) -> None:
    """Sample, evaluate, rank and report in one go (resumable); print the summary."""
    from alignlab.code.pipeline import REPORT, run

    summary = run(config, out, progress=_bar)
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(f"wrote the report to {out / REPORT}", err=True)
