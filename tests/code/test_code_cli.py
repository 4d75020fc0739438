"""The ``alignlab code`` commands, end to end on a few problems."""

import json
from pathlib import Path

from typer.testing import CliRunner

from alignlab.code.cli import app
from alignlab.code.problems import load_problems


def test_evaluate_prints_and_writes_the_summary(tmp_path: Path) -> None:
    problems = list(load_problems().values())[:3]
    samples = tmp_path / "samples.jsonl"
    lines = [{"task_id": p.task_id, "completion": p.canonical_solution} for p in problems]
    lines.append({"task_id": problems[0].task_id, "completion": "    return None\n"})
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["eval", "--samples", str(samples), "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["verdicts"] == {"failed": 1, "passed": 3}
    assert summary["pass_at_k"]["pass@1"] == (1 + 1 + 0.5) / 3
    assert (tmp_path / "samples_results.jsonl").exists()
    assert '"pass@1"' in result.output


def test_sample_then_rank(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    result = CliRunner().invoke(
        app,
        ["sample", "--model", "scripted:    return None", "--limit", "2", "--n", "2", "--out", str(samples)],
    )
    assert result.exit_code == 0, result.output
    assert len(samples.read_text().splitlines()) == 4
    results = tmp_path / "results.jsonl"
    evaluated = CliRunner().invoke(
        app, ["eval", "--samples", str(samples), "--results", str(results), "--workers", "1"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    ranked = CliRunner().invoke(app, ["rank", "--samples", str(samples), "--results", str(results)])
    assert ranked.exit_code == 0, ranked.output
    assert json.loads(ranked.output)["pass@1"]["oracle"] == 0.0


def test_the_old_command_name_still_runs_and_warns(tmp_path: Path) -> None:
    (problem,) = list(load_problems().values())[:1]
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        json.dumps({"task_id": problem.task_id, "completion": problem.canonical_solution}) + "\n"
    )
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--samples", str(samples), "--workers", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["verdicts"] == {"passed": 1}
    warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert warnings == [
        "warning: the command 'evaluate' is deprecated and goes in the next release; use 'eval'"
    ]
