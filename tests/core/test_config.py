from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
import typer
from typer.testing import CliRunner

from alignlab.core.config import config_from_dict, dump_config, load_config, option, typer_command
from alignlab.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    model: str = option("tiny", "model backend to sample from")
    temperature: float = option(0.7, "sampling temperature")
    max_tokens: int = option(16, "most new tokens per answer")
    mode: Literal["greedy", "sample"] = option("sample", "decoding mode")
    stop: tuple[str, ...] = option((), "stop strings, repeatable")
    # RUF009 until pyproject lists option() in flake8-bugbear.extend-immutable-calls.
    labels: list[str] = option(default_factory=lambda: ["x"], help="labels to tag runs with")
    dry_run: bool = option(False, "plan the run without sampling")
    output: Path = option(Path("runs/out.jsonl"), "where results go")
    seed: int | None = option(None, "random seed")


seen: list[tuple[SampleConfig, str]] = []


@typer_command(SampleConfig)
def sample(config: SampleConfig, prompt: Annotated[str, typer.Argument(help="the prompt text")]) -> None:
    """Sample answers to a prompt."""
    seen.append((config, prompt))


app = typer.Typer()
app.command()(sample)


@app.command()
def other() -> None:
    """A second command, so the app keeps command names."""


runner = CliRunner()


def invoke(*args: str) -> typer.testing.Result:
    seen.clear()
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def flat(text: str) -> str:
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def test_help_lists_every_field_with_its_help() -> None:
    result = invoke("sample", "--help")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for field in dataclasses.fields(SampleConfig):
        assert f"--{field.name.replace('_', '-')}" in text
        assert field.metadata["help"] in text
    assert "--no-dry-run" in text
    assert "the prompt text" in text
    assert "Sample answers to a prompt." in text


def test_defaults_apply_when_no_options_are_given() -> None:
    result = invoke("sample", "hello")
    assert result.exit_code == 0, result.output
    assert seen == [(SampleConfig(), "hello")]


def test_options_parse_into_the_dataclass() -> None:
    result = invoke(
        "sample", "hi", "--model", "big", "--temperature", "0.1", "--max-tokens", "3",
        "--mode", "greedy", "--stop", "\n", "--stop", "END", "--labels", "a", "--dry-run",
        "--output", "o.jsonl", "--seed", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config, prompt = seen[0]
    assert prompt == "hi"
    assert config == SampleConfig(
        model="big",
        temperature=0.1,
        max_tokens=3,
        mode="greedy",
        stop=("\n", "END"),
        labels=["a"],
        dry_run=True,
        output=Path("o.jsonl"),
        seed=5,
    )
    assert type(config.stop) is tuple


def test_command_called_from_python_uses_field_defaults() -> None:
    seen.clear()
    sample(prompt="direct", max_tokens=2, stop=["a"])
    assert seen == [(SampleConfig(max_tokens=2, stop=("a",)), "direct")]


def test_bad_literal_value_is_rejected() -> None:
    result = invoke("sample", "hi", "--mode", "beam")
    assert result.exit_code == 2
    assert "beam" in result.output
    assert seen == []


def test_bad_number_is_rejected() -> None:
    result = invoke("sample", "hi", "--max-tokens", "many")
    assert result.exit_code == 2
    assert seen == []


def test_field_without_help_is_refused_at_decoration() -> None:
    @dataclasses.dataclass
    class Bare:
        n: int = 1

    with pytest.raises(TypeError, match="'n' has no help"):
        typer_command(Bare)(lambda config: None)


def test_extra_parameter_may_not_shadow_a_field() -> None:
    def run(config: SampleConfig, model: str) -> None: ...

    with pytest.raises(TypeError, match="'model' clashes"):
        typer_command(SampleConfig)(run)


def test_option_needs_help_and_one_default() -> None:
    with pytest.raises(TypeError, match="help"):
        option(1, "")
    with pytest.raises(TypeError, match="exactly one"):
        option(1, "x", default_factory=list)  # type: ignore[call-overload]


def test_load_yaml_and_json(tmp_path: Path) -> None:
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("model: big\nstop: [a, b]\nmode: greedy\noutput: out/x.jsonl\n")
    json_path = tmp_path / "run.json"
    json_path.write_text(json.dumps({"temperature": 0, "dry_run": True}))
    assert load_config(SampleConfig, yaml_path) == SampleConfig(
        model="big", stop=("a", "b"), mode="greedy", output=Path("out/x.jsonl")
    )
    assert load_config(SampleConfig, json_path) == SampleConfig(temperature=0.0, dry_run=True)


def test_unknown_key_names_it_and_suggests_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: big\ntemprature: 0.2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'temprature'.*Did you mean 'temperature'\?"):
        load_config(SampleConfig, path)


def test_wrong_types_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mode"):
        config_from_dict(SampleConfig, {"mode": "beam"})
    with pytest.raises(ConfigError, match="max_tokens"):
        config_from_dict(SampleConfig, {"max_tokens": "lots"})


def test_malformed_files_are_data_errors(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: big\nstop: [a, b\n")
    with pytest.raises(DataError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(SampleConfig, bad_yaml)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a mapping"):
        load_config(SampleConfig, listing)
    with pytest.raises(DataError, match="no such file"):
        load_config(SampleConfig, tmp_path / "absent.yaml")


def test_dump_config_is_json_and_loads_back_equal(tmp_path: Path) -> None:
    config = SampleConfig(stop=("a",), output=Path("x/y.jsonl"), seed=3)
    dumped = dump_config(config)
    assert dumped["stop"] == ["a"]
    assert dumped["output"] == "x/y.jsonl"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(dumped))
    assert load_config(SampleConfig, path) == config


def test_importing_config_loads_no_cli_or_validation_library() -> None:
    code = (
        "import sys, alignlab.core, alignlab.core.config; "
        "print(sorted(m for m in ('typer', 'pydantic', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
