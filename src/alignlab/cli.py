"""The ``alignlab`` command line.

Sub-commands import what they need when they run, so ``alignlab --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

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
@typer_command(GenerateConfig)
def generate(
    config: GenerateConfig,
    prompt: Annotated[str | None, typer.Argument(help="a prompt, sent as one user message")] = None,
    input: Annotated[
        Path | None, typer.Option(help="JSONL of {id?, messages | prompt} to generate for")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="JSONL to append results to (a rerun resumes)")] = None,
) -> None:
    """Generate text with per-token log-probabilities, for one prompt or a JSONL file."""
    from dataclasses import asdict

    from alignlab.models import load_backend
    from alignlab.models.batch import generate_file

    if (prompt is None) == (input is None):
        raise typer.BadParameter("give either a PROMPT or --input FILE")
    backend = load_backend(config.model)
    if input is not None:
        if output is None:
            raise typer.BadParameter("--input needs --output")
        written = generate_file(backend, config, input, output)
        typer.echo(f"wrote {written} new results to {output}", err=True)
        return
    assert prompt is not None
    (gen,) = backend.generate([[{"role": "user", "content": prompt}]], config.sampling())
    if output is None:
        typer.echo(gen.text)
    else:
        with output.open("a") as f:
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
