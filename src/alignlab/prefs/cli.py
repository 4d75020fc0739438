"""The ``alignlab prefs`` commands: data, train, pmp, eval and distill.

Each command's options are generated from its config dataclass; the work is imported
when a command runs, so ``alignlab --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from alignlab.core.aliases import renamed_options
from alignlab.core.config import typer_command
from alignlab.core.extras import require
from alignlab.prefs.distill import DistillConfig
from alignlab.prefs.hhh import EvalConfig
from alignlab.prefs.pmp import PMPConfig
from alignlab.prefs.train import TrainConfig

app = typer.Typer(
    help="Preference models, PMP, the HHH evaluation and context distillation.", no_args_is_help=True
)


def _echo_loss(step: int, loss: float) -> None:
    typer.echo(f"step {step}: loss {loss:.4f}", err=True)


@app.command("data")
def data(
    spec: Annotated[
        str, typer.Argument(help="hh-harmless, hhh, stackexchange, or KIND:PATH")
    ] = "hh-harmless",
    data_dir: Annotated[str, typer.Option(help="the shared data folder")] = "",
    test_fraction: Annotated[float, typer.Option(help="share of groups held out")] = 0.2,
) -> None:
    """Read a preference source and report rankings, pairs, skipped records and the split."""
    from alignlab.prefs.data import load_source, split

    loaded = load_source(spec, data_dir or None)
    typer.echo(loaded.summary())
    pairs = sum(len(r.pairs()) for r in loaded.rankings)
    test = split(loaded.rankings, "test", test_fraction)
    train = len(loaded.rankings) - len(test)
    typer.echo(f"{pairs} pairs; split by a hash of the first human turn: {train} train, {len(test)} test")


@app.command("train")
@typer_command(TrainConfig)
def train_command(config: TrainConfig) -> None:
    """Train a preference model (ranked, binary or imitation); resumes from --out."""
    require("prefs", needed_for="alignlab prefs train")
    from alignlab.prefs.train import train, training_data

    rankings, loaded = training_data(config)
    typer.echo(loaded.summary(), err=True)
    result = train(config, rankings, on_step=_echo_loss)
    typer.echo("; ".join(result.notes), err=True)
    typer.echo(str(result.output / "model"))


@app.command("pmp")
@typer_command(PMPConfig)
def pmp_command(config: PMPConfig) -> None:
    """Preference-model pre-training, then fine-tuning from it, in one go."""
    require("prefs", needed_for="alignlab prefs pmp")
    from alignlab.prefs.pmp import run_pmp

    first, second = run_pmp(config)
    typer.echo(f"PMP loss {first.losses[0]:.4f} -> {first.losses[-1]:.4f}", err=True)
    typer.echo(f"fine-tuning loss {second.losses[0]:.4f} -> {second.losses[-1]:.4f}", err=True)
    typer.echo(str(second.output / "model"))


@app.command("eval")
@renamed_options(output="out")
@typer_command(EvalConfig)
def eval_command(
    config: EvalConfig,
    out: Annotated[Path | None, typer.Option(help="write the reports as JSON here")] = None,
) -> None:
    """Accuracy of a preference model, or of a language model by log-probability, on a suite."""
    require("prefs", needed_for="alignlab prefs eval")
    from alignlab.prefs.hhh import run_eval

    reports = run_eval(config)
    for report in reports:
        typer.echo(report.table() + "\n")
    if out is not None:
        out.write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")


@app.command("distill")
@typer_command(DistillConfig)
def distill_command(
    config: DistillConfig,
    hhh: Annotated[bool, typer.Option(help="also report HHH accuracy: prompted, distilled and plain")] = True,
) -> None:
    """Context-distil the HHH prompt into the model; report KL to the teacher before and after."""
    require("prefs", needed_for="alignlab prefs distill")
    from alignlab.prefs.distill import distill, load_lm
    from alignlab.prefs.hhh import evaluate_lm, suite_rankings
    from alignlab.prefs.prompt import load_prompt

    result = distill(config, on_step=_echo_loss)
    typer.echo(
        f"KL to the prompted teacher on held-out texts: {result.kl_before:.4f} -> {result.kl_after:.4f}"
    )
    if not hhh:
        return
    rankings = suite_rankings("hhh", config.data_dir)
    plain, tokenizer = load_lm(config.model, config.layers)
    plain.eval()
    reports = {
        "prompted": evaluate_lm(plain, tokenizer, rankings, "hhh", load_prompt(config.prompt or None)),
        "plain": evaluate_lm(plain, tokenizer, rankings, "hhh"),
        "distilled": evaluate_lm(result.student, tokenizer, rankings, "hhh"),
    }
    for name, report in reports.items():
        typer.echo(f"[{name}] {report.table()}\n")
    summary = json.loads((result.output / "distill.json").read_text())
    summary["hhh"] = {name: report.to_dict() for name, report in reports.items()}
    (result.output / "distill.json").write_text(json.dumps(summary, indent=2) + "\n")
