"""Old option and command names: hidden, still working, one warning line on stderr."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from alignlab.core.aliases import renamed_command, renamed_options
from alignlab.core.config import Base, config_from_dict, option, typer_command, with_overrides
from alignlab.errors import ConfigError

WARNING = "warning: --output is deprecated and goes in the next release; use --out\n"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    steps: int = option(10, "optimiser steps")
    tags: tuple[str, ...] = option(("a",), "tags, repeatable")
    out: str = option("runs", "output folder", old_names=("output",))


SHIPPED = {"small": RunConfig(steps=2, tags=("s",), out="small-runs")}


def load(name: str) -> RunConfig:
    if name in SHIPPED:
        return SHIPPED[name]
    return config_from_dict(RunConfig, {"steps": int(name)})


seen: list[object] = []
app = typer.Typer()


@app.command("train")
@typer_command(RunConfig)
def train(config: RunConfig) -> None:
    """Train."""
    seen.append(config)


@app.command("based")
@typer_command(RunConfig, base=Base("preset", load, "small", "preset to start from"))
def based(config: RunConfig, verbose: Annotated[bool, typer.Option(help="talk")] = False) -> None:
    """Start from a preset."""
    seen.append((config, verbose))


@app.command("report")
@renamed_options(output="out")
def report(out: Annotated[Path | None, typer.Option(help="where the report goes")] = None) -> None:
    """Write a report."""
    seen.append(out)


app.command("old-report", hidden=True)(renamed_command(report, "old-report", "report"))


def invoke(*args: str) -> typer.testing.Result:
    seen.clear()
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_a_renamed_field_answers_to_its_old_name_with_one_warning_line() -> None:
    result = invoke("train", "--output", "elsewhere")
    assert result.exit_code == 0, result.output
    assert seen == [RunConfig(out="elsewhere")]
    assert result.stderr == WARNING
    assert "deprecated" not in result.stdout


def test_the_new_name_does_not_warn_and_both_together_are_refused() -> None:
    result = invoke("train", "--out", "here")
    assert result.exit_code == 0 and seen == [RunConfig(out="here")] and result.stderr == ""
    both = invoke("train", "--out", "here", "--output", "there")
    assert both.exit_code == 2 and seen == []
    assert "give --out or its old name --output, not both" in both.stderr


def test_old_names_are_hidden_from_help() -> None:
    for command in ("train", "report"):
        text = invoke(command, "--help").stdout
        assert "--out" in text and "--output" not in text


def test_a_renamed_hand_written_option_warns_and_passes_the_value_on() -> None:
    result = invoke("report", "--output", "r.json")
    assert result.exit_code == 0, result.output
    assert seen == [Path("r.json")] and result.stderr == WARNING
    assert invoke("report").stderr == "" and seen == [None]


def test_a_renamed_command_warns_then_runs_the_new_one() -> None:
    result = invoke("old-report", "--out", "r.json")
    assert result.exit_code == 0, result.output
    assert seen == [Path("r.json")]
    assert result.stderr == (
        "warning: the command 'old-report' is deprecated and goes in the next release; use 'report'\n"
    )
    assert "old-report" not in invoke("--help").stdout


def test_renaming_a_missing_parameter_is_refused_at_decoration() -> None:
    def command(out: str = "x") -> None: ...

    with pytest.raises(TypeError, match="no parameter 'target'"):
        renamed_options(output="target")(command)


def test_options_not_given_keep_the_base_configs_values() -> None:
    result = invoke("based")
    assert result.exit_code == 0, result.output
    assert seen == [(SHIPPED["small"], False)]


def test_options_given_override_the_base_config() -> None:
    result = invoke("based", "--preset", "7", "--tags", "x", "--tags", "y", "--verbose")
    assert result.exit_code == 0, result.output
    assert seen == [(RunConfig(steps=7, tags=("x", "y")), True)]
    # Given explicitly, even a value equal to the dataclass default wins over the preset's.
    result = invoke("based", "--steps", "10", "--output", "o")
    assert result.exit_code == 0, result.output
    assert seen == [(RunConfig(steps=10, tags=("s",), out="o"), False)]


def test_base_help_lists_the_base_option_and_every_field() -> None:
    text = re.sub(r"\s+", " ", invoke("based", "--help").stdout)
    for flag in ("--preset", "--steps", "--tags", "--out", "--verbose"):
        assert flag in text
    assert "preset to start from" in text


def test_with_overrides_checks_names_and_types() -> None:
    assert with_overrides(RunConfig(), {"steps": 3}) == RunConfig(steps=3)
    with pytest.raises(ConfigError, match="Did you mean 'steps'"):
        with_overrides(RunConfig(), {"step": 3})
    with pytest.raises(ConfigError, match="steps"):
        with_overrides(RunConfig(), {"steps": "many"})


def test_a_base_option_may_not_shadow_a_field() -> None:
    with pytest.raises(TypeError, match="'steps' clashes"):
        typer_command(RunConfig, base=Base("steps", load, "small", "x"))
