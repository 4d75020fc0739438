"""Configs are dataclasses; the command line and config files are generated from them.

Every field has a default, a type and a one-line help, declared with :func:`option`::

    @dataclass(frozen=True)
    class SampleConfig:
        model: str = option("tiny", "model backend to sample from")
        temperature: float = option(0.7, "sampling temperature")
        stop: tuple[str, ...] = option((), "stop strings (repeat the option for several)")

:func:`typer_command` turns the fields into ``--model``, ``--temperature`` and ``--stop``
options; :func:`load_config` reads the same fields from a JSON or YAML file.

A field renamed in a release keeps its old option name, hidden and warning when used, for one
more: ``out: str = option("runs", "output folder", old_names=("output",))``. A command can
also start from a config file and let the options given override its values
(``typer_command(Recipe, base=Base("recipe", load_recipe, "default", "..."))``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar, overload

from alignlab.core.aliases import CONTEXT, context_parameter, given, renamed_options
from alignlab.errors import ConfigError, DataError, DependencyError

C = TypeVar("C")
R = TypeVar("R")
T = TypeVar("T")

HELP_KEY = "help"
OLD_NAMES_KEY = "old_names"


@overload
def option(default: T, help: str, *, old_names: tuple[str, ...] = ()) -> T: ...


@overload
def option(*, default_factory: Callable[[], T], help: str, old_names: tuple[str, ...] = ()) -> T: ...


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    old_names: tuple[str, ...] = (),
) -> Any:
    """A dataclass field with a default and a one-line help.

    Args:
        default: the default value (immutable; use ``default_factory`` for lists and dicts).
        help: what the field means, shown by ``--help``.
        default_factory: a function making the default, instead of ``default``.
        old_names: names the field had before a rename; each stays a hidden option that
            warns when used, for one release.

    Raises:
        TypeError: no help, or not exactly one of ``default`` and ``default_factory``.
    """
    if not help:
        raise TypeError("option() needs a one-line help")
    if (default is dataclasses.MISSING) == (default_factory is dataclasses.MISSING):
        raise TypeError("option() needs exactly one of default and default_factory")
    metadata: dict[str, Any] = {HELP_KEY: help, OLD_NAMES_KEY: tuple(old_names)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_help(field: dataclasses.Field[Any]) -> str:
    """The help of a config field, or ``""`` if it was declared without :func:`option`."""
    return str(field.metadata.get(HELP_KEY, ""))


def field_old_names(field: dataclasses.Field[Any]) -> tuple[str, ...]:
    """The names a config field had before it was renamed (see :func:`option`)."""
    return tuple(field.metadata.get(OLD_NAMES_KEY, ()))


@dataclass(frozen=True)
class Base(Generic[C]):
    """An option naming the config a command starts from; the options given override its values.

    Attributes:
        name: the option's name (``"recipe"`` gives ``--recipe``).
        load: reads the named config (a shipped name or a file path).
        default: the value used when the option is not given.
        help: the option's help; say that the other options override the config's values.
    """

    name: str
    load: Callable[[str], C]
    default: str
    help: str


def typer_command(
    config_cls: type[C], *, base: Base[C] | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Turn ``fn(config, **extra)`` into a typer command with one option per config field.

    The returned function's signature holds ``--field-name`` options (``--flag/--no-flag``
    for bools, repeatable for tuples and lists) in place of ``config``, plus ``fn``'s
    other parameters unchanged; it builds the config from the options and calls ``fn``.
    A field's old names (``option(..., old_names=...)``) are hidden options that warn.

    Args:
        config_cls: the config dataclass.
        base: an option naming a config to start from. Without it, options not given take
            the dataclass defaults; with it, they take the loaded config's values, and only
            the options given (or set to other than the dataclass default) override them.

    Raises:
        TypeError: ``config_cls`` is not a dataclass, a field has no help, ``fn`` takes
            no config parameter, takes ``*args``/``**kwargs`` or positional-only
            parameters, or names a parameter like a config field or the base option.
    """
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise TypeError(f"typer_command needs a dataclass, got {config_cls!r}")
    hints = typing.get_type_hints(config_cls, include_extras=True)
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    names = {f.name for f in fields}
    if base is not None and base.name in names:
        raise TypeError(f"base option {base.name!r} clashes with a config field")
    renames = {old: f.name for f in fields for old in field_old_names(f)}

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        extras = _extra_parameters(fn, names | ({base.name} if base else set()))
        options = [_option_parameter(f, hints[f.name], show_default=base is None) for f in fields]
        if base is not None:
            options.insert(0, _base_parameter(base))
            options.append(context_parameter())

        def command(**kwargs: Any) -> R:
            context = kwargs.pop(CONTEXT, None)
            # A field left out (when called from Python rather than typer) keeps its default.
            values = {
                f.name: _from_cli(kwargs.pop(f.name), hints[f.name]) for f in fields if f.name in kwargs
            }
            if base is None:
                return fn(config_cls(**values), **kwargs)
            start = base.load(kwargs.pop(base.name, base.default))
            overrides = {f.name: values[f.name] for f in fields if _overrides(f, values, context)}
            return fn(with_overrides(start, overrides), **kwargs)

        functools.update_wrapper(command, fn)
        signature = inspect.Signature([*options, *extras])
        command.__signature__ = signature  # type: ignore[attr-defined]
        # typer also reads type hints; make them agree with the generated signature.
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return renamed_options(**renames)(command) if renames else command

    return decorate


def with_overrides(config: C, overrides: Mapping[str, Any]) -> C:
    """``config`` with some fields replaced, checked like a config file's values.

    Raises:
        ConfigError: an override names no field (the error suggests the closest) or has
            the wrong type.
    """
    if not overrides:
        return config
    merged = {**dump_config(config), **overrides}
    return config_from_dict(type(config), merged, source="options")


def _overrides(field: dataclasses.Field[Any], values: Mapping[str, Any], context: Any | None) -> bool:
    """Whether a field's option was given, so it overrides the base config's value."""
    if field.name not in values:
        return False
    if given(field.name, values, context):
        return True
    default = field.default
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    return bool(values[field.name] != default)


def _base_parameter(base: Base[Any]) -> inspect.Parameter:
    import typer

    info = typer.Option(f"--{base.name.replace('_', '-')}", help=base.help)
    return inspect.Parameter(
        base.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str, info], default=base.default
    )


def _extra_parameters(fn: Callable[..., Any], field_names: set[str]) -> list[inspect.Parameter]:
    """The parameters of ``fn`` after its config parameter, made keyword-only."""
    parameters = list(inspect.signature(fn, eval_str=True).parameters.values())
    if not parameters:
        raise TypeError(f"{fn.__qualname__} must take the config as its first parameter")
    extras = parameters[1:]
    for parameter in extras:
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{fn.__qualname__}: parameter {parameter.name!r} must be passable by keyword")
        if parameter.name in field_names:
            raise TypeError(f"{fn.__qualname__}: parameter {parameter.name!r} clashes with a config field")
    # typer passes every value by keyword, so keyword-only keeps any order valid.
    return [p.replace(kind=p.KEYWORD_ONLY) for p in extras]


def _option_parameter(
    field: dataclasses.Field[Any], annotation: Any, *, show_default: bool = True
) -> inspect.Parameter:
    import typer

    help_text = field_help(field)
    if not help_text:
        raise TypeError(f"config field {field.name!r} has no help; declare it with option(default, help)")
    flag = field.name.replace("_", "-")
    declaration = f"--{flag}/--no-{flag}" if annotation is bool else f"--{flag}"
    repeated = _sequence_item(annotation) is not None
    default: Any = inspect.Parameter.empty
    factory = None
    if field.default is not dataclasses.MISSING:
        default = tuple(field.default) if repeated else field.default
    elif field.default_factory is not dataclasses.MISSING:
        if repeated:
            # A tuple is immutable, so one evaluation can serve every invocation and shows in --help.
            default = tuple(field.default_factory())
        else:
            factory = field.default_factory
    info = typer.Option(declaration, help=help_text, default_factory=factory, show_default=show_default)
    return inspect.Parameter(
        field.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[_cli_annotation(annotation), info],
        default=default,
    )


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _sequence_item(annotation: Any) -> Any | None:
    """The item type of ``tuple[X, ...]`` or ``list[X]`` (optionally ``| None``), else None."""
    inner, _ = _strip_optional(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is list and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _cli_annotation(annotation: Any) -> Any:
    """The type typer should parse: a repeatable ``list[X]`` for any variable-length sequence."""
    item = _sequence_item(annotation)
    if item is None:
        return annotation
    _, optional = _strip_optional(annotation)
    return list[item] | None if optional else list[item]  # type: ignore[valid-type]


def _from_cli(value: Any, annotation: Any) -> Any:
    """Convert a parsed option back to the field's own type (typer gives lists for tuples)."""
    if value is None or _sequence_item(annotation) is None:
        return value
    inner, _ = _strip_optional(annotation)
    return tuple(value) if typing.get_origin(inner) is tuple else list(value)


def load_config(config_cls: type[C], path: str | Path) -> C:
    """Read a config from a JSON (``.json``) or YAML (any other name) file.

    Args:
        config_cls: the config dataclass.
        path: the file; its keys are field names.

    Raises:
        DataError: the file is missing, does not parse, or is not a mapping.
        ConfigError: a key is not a field (the error suggests the closest) or a value
            has the wrong type.
        DependencyError: a YAML file was given and PyYAML is not installed.
    """
    return config_from_dict(config_cls, _read_mapping(Path(path)), source=str(path))


def config_from_dict(config_cls: type[C], data: Mapping[str, Any], *, source: str = "config") -> C:
    """Build a config from a mapping of field names to values, checking names and types.

    Args:
        config_cls: the config dataclass.
        data: field values; missing fields keep their defaults.
        source: where the values came from, for error messages.

    Raises:
        ConfigError: a key is not a field (the error suggests the closest) or a value
            has the wrong type.
    """
    from pydantic import TypeAdapter, ValidationError

    known = [f.name for f in dataclasses.fields(config_cls) if f.init]  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key).replace("-", "_"), known, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{source}: unknown key {key!r} for {config_cls.__name__}.{hint} Known: {', '.join(known)}."
            )
    try:
        return TypeAdapter(config_cls).validate_python(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc


def dump_config(config: Any) -> dict[str, Any]:
    """A config as a JSON-able dict that :func:`config_from_dict` reads back to an equal config.

    Raises:
        TypeError: ``config`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"dump_config needs a dataclass instance, got {config!r}")
    from pydantic import TypeAdapter

    dumped: dict[str, Any] = TypeAdapter(type(config)).dump_python(config, mode="json")
    return dumped


def _read_mapping(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise DataError(path, None, "no such file")
    text = path.read_text(encoding="utf-8")
    data = _parse_json(path, text) if path.suffix.lower() == ".json" else _parse_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(path, None, f"expected a mapping of field names to values, got {type(data).__name__}")
    return data


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from exc


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]  # types-PyYAML may be absent
    except ImportError as exc:
        raise DependencyError("yaml", "all") from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise DataError(path, line, f"invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DataError(path, None, f"invalid YAML: {exc}") from exc
