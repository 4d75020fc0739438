"""``alignlab guard``: build data, train, check and evaluate a guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from alignlab.core.config import Base, typer_command
from alignlab.core.extras import require
from alignlab.guard.recipe import Recipe, load_recipe
from alignlab.guard.redteam import RedTeamConfig

app = typer.Typer(
    help="Constitutional Classifiers++: constitution → data → probe + classifier cascade.",
    no_args_is_help=True,
)

RecipeOpt = Annotated[str, typer.Option(help="shipped recipe (default, smoke) or a recipe YAML")]
DataOpt = Annotated[
    Path | None, typer.Option(help="shared datasets folder (default: $ALIGNLAB_DATA or ../shared/data)")
]
OutOpt = Annotated[Path | None, typer.Option(help="output folder (default: under the alignlab cache)")]


def _work(recipe: Any) -> Path:
    from alignlab.models.embedded import cache_root

    return Path(cache_root() / "guard" / str(recipe.name))


def _data_folder(recipe: Any, data_dir: Path | None) -> Path:
    """The recipe's exchange dataset folder, keyed by what the data depends on (no stale data reused)."""
    from alignlab.guard.constitution import load_constitution
    from alignlab.guard.fingerprint import data_fingerprint
    from alignlab.guard.seeds import data_dir as find_data

    fingerprint = data_fingerprint(recipe, load_constitution(recipe.constitution), find_data(data_dir))
    return _work(recipe) / f"data-{fingerprint[:16]}"


def _existing(recipe: Any, data_dir: Path | None) -> list[dict[str, Any]]:
    """The exchanges a recipe's data step wrote (without generating more)."""
    from alignlab.core.results import ResultsFile
    from alignlab.errors import ConfigError

    path = _data_folder(recipe, data_dir) / "exchanges.jsonl"
    if not path.is_file():
        raise ConfigError(
            f"no data at {path}; run `alignlab guard data --recipe {recipe.name}` first "
            "(the long step: the policy answers every exchange at 256 tokens; it resumes if stopped)"
        )
    from alignlab.guard.dataset import selected

    return selected(recipe, ResultsFile(path, "id").records())


def _data(recipe: Any, data_dir: Path | None) -> list[dict[str, Any]]:
    from alignlab.core.jsonl import read_jsonl
    from alignlab.guard import dataset
    from alignlab.guard.answers import answers_path
    from alignlab.guard.constitution import load_constitution
    from alignlab.guard.seeds import data_dir as find_data
    from alignlab.models import load_backend

    policy = dataset.in_answer_precision(load_backend(recipe.policy), recipe)
    generator = policy if recipe.generator == recipe.policy else load_backend(recipe.generator)
    path = dataset.build(
        recipe,
        load_constitution(recipe.constitution),
        _data_folder(recipe, data_dir),
        policy=policy,
        root=find_data(data_dir),
        generator=generator,
        answers=answers_path(
            _work(recipe).parent / "answers", dataset.answerer(recipe), recipe.response_tokens
        ),
    )
    return dataset.selected(recipe, list(read_jsonl(path)))


@app.command("data")
def data(recipe: RecipeOpt = "default", data_dir: DataOpt = None) -> None:
    """Build (or resume) the labelled exchange dataset a recipe describes; print its card."""
    require("guard", needed_for="alignlab guard data")
    from alignlab.guard.recipe import load_recipe

    r = load_recipe(recipe)
    records = _data(r, data_dir)
    folder = _data_folder(r, data_dir)
    typer.echo((folder / "card.json").read_text())
    typer.echo(f"{len(records)} exchanges in {folder}", err=True)


RECIPE = Base(
    "recipe",
    load_recipe,
    "default",
    "shipped recipe (default, smoke) or a recipe YAML; the options below override its values",
)


@app.command("train")
@typer_command(Recipe, base=RECIPE)
def train(r: Recipe, data_dir: DataOpt = None, out: OutOpt = None) -> None:
    """Train the classifiers, the probe and the cascade thresholds; resumes an interrupted run.

    Every recipe field is an option; those not given keep the --recipe file's value.
    """
    require("guard", needed_for="alignlab guard train")
    from alignlab.guard.policy import load_policy
    from alignlab.guard.train import train_guard

    records = _data(r, data_dir)
    target = out or _work(r) / "guard"
    card = train_guard(r, records, load_policy(r.policy), _work(r) / "work", target)
    typer.echo(json.dumps(card["thresholds"], indent=2))
    typer.echo(f"guard written to {target}", err=True)


@app.command("check")
def check(
    message: Annotated[str | None, typer.Argument(help="a user message to screen")] = None,
    response: Annotated[str, typer.Option(help="the assistant's response, if any")] = "",
    input: Annotated[
        Path | None, typer.Option(help="JSONL of {messages[, response, id]} conversations to screen")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="with --input: verdicts JSONL, appended as they come (default: INPUT.verdicts.jsonl)"
        ),
    ] = None,
    guard: Annotated[str, typer.Option(help="default (shipped) or a guard folder")] = "default",
) -> None:
    """Score a conversation as serving scores it: the verdict, each stage's score and which stage decided.

    With --input, every line gets a verdict (or an error record naming the line) written as it
    goes; a rerun resumes.
    """
    require("guard", needed_for="alignlab guard check")
    from alignlab.guard.load import load_guard

    if (message is None) == (input is None):
        raise typer.BadParameter("give either a MESSAGE or --input FILE")
    g = load_guard(guard)
    if input is None:
        assert message is not None
        typer.echo(json.dumps(g.check([{"role": "user", "content": message}], response).to_dict()))
        return
    from alignlab.guard.checkfile import check_file

    target = out or input.with_name(input.name + ".verdicts.jsonl")
    counts = check_file(g, input, target)
    typer.echo(json.dumps(counts))
    typer.echo(f"verdicts: {target}", err=True)


@app.command("explain")
def explain_command(
    message: Annotated[str, typer.Argument(help="the user message (or use --conversation)")] = "",
    response: Annotated[str, typer.Option(help="the assistant's reply, if any")] = "",
    conversation: Annotated[
        Path | None, typer.Option(help="a JSON file of {messages[, response]} instead of MESSAGE")
    ] = None,
    guard: Annotated[str, typer.Option(help="default (shipped) or a guard folder")] = "default",
    out: Annotated[Path, typer.Option(help="trace.html (plot and token table) or trace.png")] = Path(
        "guard-trace.html"
    ),
) -> None:
    """Draw a conversation's per-token guard trace (stage-1 score, escalation, ensemble, verdict)."""
    require("guard", needed_for="alignlab guard explain")
    from alignlab.errors import DataError
    from alignlab.guard.explain import explain, write
    from alignlab.guard.load import load_guard

    messages: list[Any] = [{"role": "user", "content": message}]
    if conversation is not None:
        try:
            spec = json.loads(conversation.read_text())
            messages, response = spec["messages"], spec.get("response", response)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(conversation, None, f"expected a JSON object with 'messages': {exc}") from exc
    elif not message:
        raise typer.BadParameter("give a MESSAGE or --conversation FILE")
    trace = explain(load_guard(guard), messages, response)
    typer.echo(json.dumps(trace["verdict"]))
    typer.echo(f"trace: {write(trace, out)}", err=True)


@app.command("eval")
def evaluate(
    recipe: RecipeOpt = "default",
    guard: Annotated[str, typer.Option(help="default (shipped) or a guard folder")] = "default",
    data_dir: DataOpt = None,
    out: OutOpt = None,
    max_per_set: Annotated[int, typer.Option(help="items per evaluation set, chosen by hash (0: all)")] = 120,
) -> None:
    """Evaluate on held-out data: JSON results, per-exchange scores, plots and an HTML report."""
    require("guard", needed_for="alignlab guard eval")
    from alignlab.guard.classifier import ExchangeClassifier
    from alignlab.guard.evaluate import eval_items, run_eval
    from alignlab.guard.load import load_guard
    from alignlab.guard.recipe import load_recipe
    from alignlab.guard.seeds import data_dir as find_data

    r = load_recipe(recipe)
    g = load_guard(guard)
    folder = g.folder
    baselines = {
        v: ExchangeClassifier.load(folder / f"{v}_classifier", g.policy.model) for v in ("input", "output")
    }
    test = [x for x in _existing(r, data_dir) if x["split"] == "test"]
    items = eval_items(find_data(data_dir), test, r.held_out_families, max_per_set, r.seed)
    if r.real_traffic != "none":
        from alignlab.guard.traffic import heldout_items

        items += heldout_items(r.real_traffic, r.real_traffic_heldout, max_per_set, r.real_traffic_turns)
    target = out or _work(r) / "eval"
    summary = run_eval(g, baselines, items, target, r.response_tokens)
    typer.echo(
        json.dumps(
            {k: v for k, v in summary.items() if k in ("escalation_rate", "spearman_probe_classifier")}
        )
    )
    typer.echo(f"report: {target / 'report.html'}", err=True)


@app.command("redteam")
@typer_command(RedTeamConfig)
def redteam(config: RedTeamConfig) -> None:
    """Red-team a served model with pinned garak probes: attack success per family, guarded vs baseline.

    garak is installed on first use into its own environment under the alignlab cache.
    """
    from alignlab.guard.redteam import output_folder, run_redteam

    report = run_redteam(config)
    typer.echo(json.dumps(report["families"], indent=2))
    typer.echo(f"report: {output_folder(config) / 'redteam.md'}", err=True)
