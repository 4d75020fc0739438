"""The command line, through typer's runner, on the scripted backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignlab import cli


@pytest.fixture
def run() -> CliRunner:
    return CliRunner()


def invoke(args: list[str]) -> tuple[int, str]:
    """Run ``alignlab ARGS`` as the console script does; returns the exit code and output."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "alignlab", *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_generate_one_prompt(run: CliRunner) -> None:
    result = run.invoke(cli.app, ["generate", "--model", "scripted:hi there", "hello"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "hi there"


def test_generate_a_file_resumes_without_duplicates(run: CliRunner, tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [{"id": "a", "prompt": "one"}, {"messages": [{"role": "user", "content": "two"}]}]
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    args = ["generate", "--model", "scripted", "--input", str(source), "--out", str(target)]
    assert run.invoke(cli.app, args).exit_code == 0
    with source.open("a") as f:
        f.write(json.dumps({"id": "c", "prompt": "three"}) + "\n")
    assert run.invoke(cli.app, args).exit_code == 0
    records = [json.loads(x) for x in target.read_text().splitlines()]
    assert [(r["id"], r["text"]) for r in records] == [("a", "one"), ("2", "two"), ("c", "three")]
    assert all(r["provenance"]["component"] == "generate" and r["provenance"]["data_hash"] for r in records)


def test_generate_takes_its_old_output_spelling_with_a_warning(run: CliRunner, tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"id": "a", "prompt": "one"}) + "\n")
    args = ["generate", "--model", "scripted", "--input", str(source), "--output", str(target)]
    result = run.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["text"] for x in target.read_text().splitlines()] == ["one"]
    assert "warning: --output is deprecated and goes in the next release; use --out" in result.stderr


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "ok"}\n{"messages": "not a list"}\n')
    code, output = invoke(
        ["generate", "--model", "scripted", "--input", str(source), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and f"{source}:2" in output


def test_unknown_model_suggests_the_closest(tmp_path: Path) -> None:
    code, output = invoke(["generate", "--model", "scriptd", "hi"])
    assert code == 2 and "Did you mean 'scripted'" in output
