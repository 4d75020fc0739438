"""Old option and command names, kept for one release: hidden from ``--help``, warning when used.

A renamed option still parses under its old spelling; using it prints one line to stderr
naming the new one, then behaves exactly like the new option. Giving both is an error, so
a script never silently runs with the value it did not mean::

    @app.command("eval")
    @renamed_options(output="out")
    def evaluate(out: Annotated[Path | None, typer.Option(help="...")] = None) -> None: ...

    app.command("evaluate", hidden=True)(renamed_command(evaluate, "evaluate", "eval"))

Nothing here imports typer until a command is built or run.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Annotated, Any, TypeVar

R = TypeVar("R")

# Sources that mean the user set a value, as opposed to its default.
_GIVEN_SOURCES = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")
# The parameter through which typer hands a generated command its context.
CONTEXT = "context__"


def warn_renamed(old: str, new: str) -> None:
    """Print the one-line deprecation warning for a name that became ``new``."""
    print(f"warning: {old} is deprecated and goes in the next release; use {new}", file=sys.stderr)


def given(name: str, values: Mapping[str, Any], context: Any | None) -> bool:
    """Whether the parameter ``name`` was set by the user rather than left at its default.

    Args:
        name: the parameter.
        values: the keyword arguments the command was called with.
        context: the command's ``typer.Context`` (it knows each value's source), or None
            when called from Python, where a keyword that was passed counts as set.
    """
    if context is not None:
        source = context.get_parameter_source(name)
        if source is not None:
            return bool(source.name in _GIVEN_SOURCES)
    return name in values


def context_parameter() -> inspect.Parameter:
    """A keyword-only parameter typer fills with the command's context (None from Python)."""
    import typer

    return inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context, default=None)


def renamed_options(**old_to_new: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Keep options answering to their old names: ``@renamed_options(output="out")``.

    Apply it to a function whose signature typer reads (a plain command, or one made by
    :func:`alignlab.core.config.typer_command`). Each old name becomes a hidden
    ``--old-name`` option of the new one's type; a value given there warns on stderr and is
    passed on as the new option.

    Raises:
        TypeError: a new name is not a parameter, an old one already is, or a renamed
            option is a ``--flag/--no-flag`` boolean.
    """

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        parameters = list(inspect.signature(fn, eval_str=True).parameters.values())
        hidden = alias_parameters(parameters, old_to_new)
        # A command made by typer_command may take the context too; then it is passed on.
        passes_context = any(p.name == CONTEXT for p in parameters)
        if not passes_context:
            hidden.append(context_parameter())

        def command(**kwargs: Any) -> R:
            context = kwargs.get(CONTEXT) if passes_context else kwargs.pop(CONTEXT, None)
            apply_aliases(kwargs, old_to_new, context)
            return fn(**kwargs)

        functools.update_wrapper(command, fn)
        signature = inspect.Signature([*(p.replace(kind=p.KEYWORD_ONLY) for p in parameters), *hidden])
        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return command

    return decorate


def renamed_command(fn: Callable[..., R], old: str, new: str) -> Callable[..., R]:
    """``fn`` registered under an old command name: it warns on stderr, then runs ``fn``.

    Register it hidden: ``app.command("evaluate", hidden=True)(renamed_command(fn, "evaluate", "eval"))``.
    """

    def command(**kwargs: Any) -> R:
        warn_renamed(f"the command {old!r}", f"{new!r}")
        return fn(**kwargs)

    functools.update_wrapper(command, fn)
    command.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return command


def alias_parameters(
    parameters: Sequence[inspect.Parameter], old_to_new: Mapping[str, str]
) -> list[inspect.Parameter]:
    """Hidden keyword-only parameters declaring each old option name, defaulting to None.

    Raises:
        TypeError: as for :func:`renamed_options`.
    """
    import typer

    by_name = {p.name: p for p in parameters}
    hidden = []
    for old, new in old_to_new.items():
        if new not in by_name:
            raise TypeError(f"renamed option {old!r}: there is no parameter {new!r}")
        if old in by_name:
            raise TypeError(f"renamed option {old!r} is still a parameter")
        annotation = _bare(by_name[new].annotation)
        if annotation is bool:
            raise TypeError(f"renamed option {old!r}: boolean flags are not supported")
        flag, flag_new = old.replace("_", "-"), new.replace("_", "-")
        info = typer.Option(f"--{flag}", hidden=True, help=f"deprecated: use --{flag_new}")
        hidden.append(
            inspect.Parameter(
                _alias_name(old),
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[annotation | None, info],
                default=None,
            )
        )
    return hidden


def apply_aliases(
    kwargs: MutableMapping[str, Any], old_to_new: Mapping[str, str], context: Any | None = None
) -> None:
    """Move values given under old names to their new ones, warning once for each.

    ``context`` is the command's ``typer.Context``, if any (see :func:`given`).

    Raises:
        typer.BadParameter: both the old and the new name were given.
    """
    for old, new in old_to_new.items():
        value = kwargs.pop(_alias_name(old), None)
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        flag, flag_new = f"--{old.replace('_', '-')}", f"--{new.replace('_', '-')}"
        if given(new, kwargs, context):
            import typer

            raise typer.BadParameter(f"give {flag_new} or its old name {flag}, not both")
        warn_renamed(flag, flag_new)
        kwargs[new] = value


def _alias_name(old: str) -> str:
    return f"{old}__renamed"


def _bare(annotation: Any) -> Any:
    """The type inside ``Annotated[T, ...]``."""
    if typing.get_origin(annotation) is Annotated:
        return typing.get_args(annotation)[0]
    return annotation
