"""The HTML report and `alignlab code run`: one self-contained page, a resumable one-go run."""

import base64
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from alignlab.code.cli import app
from alignlab.code.passk import estimate_pass_at_k
from alignlab.code.report import pass_at_k_curve, write_report

# Solves HumanEval/0 and nothing else: the scripted model gives the same reply to every problem.
REPLY = (
    "Here it is:\n```python\ndef has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n"
)
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def records(passed: dict[str, list[bool]]) -> list[dict[str, object]]:
    return [
        {"task_id": t, "completion_id": i, "passed": p} for t, ps in passed.items() for i, p in enumerate(ps)
    ]


def test_the_curve_is_the_unbiased_estimate_at_every_k() -> None:
    passed = {"a": [True, False, False, True], "b": [False] * 3 + [True] * 2}
    curve = pass_at_k_curve(records(passed))
    assert list(curve) == [1, 2, 3, 4]
    for k, value in curve.items():
        assert value == (estimate_pass_at_k(4, 2, k) + estimate_pass_at_k(5, 2, k)) / 2


def test_the_report_stands_alone_with_its_plots(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records({"a": [True, False], "b": [False] * 2})))
    summary = {
        "pass_at_k": {"pass@1": 0.25},
        "samples": 4,
        "tasks": 2,
        "verdicts": {"failed": 3, "passed": 1},
    }
    ranking = {"mean_logprob": 0.5, "random": 0.25, "oracle": 0.5}
    page = write_report(tmp_path / "report.html", summary, results, ranking).read_text()
    assert "pass@k versus k" in page and "pass@1 by ranker" in page
    assert "<td>0.2500</td>" in page and "mean_logprob" in page and "verdict: failed" in page
    images = PNG.findall(page)
    assert len(images) == 2
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch


def test_run_samples_evaluates_ranks_and_reports_then_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--model", f"scripted:{REPLY}", "--mode", "instruct", "--limit", "2", "--workers", "1"]
    first = CliRunner().invoke(app, [*args, "--n", "1", "--out", str(out)])
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdicts"] == {"failed": 1, "passed": 1}
    assert summary["pass_at_k"] == {"pass@1": 0.5}
    assert summary["pass_at_1_by_ranker"]["oracle"] == 0.5
    assert len(PNG.findall((out / "report.html").read_text())) == 2
    results = (out / "results.jsonl").read_text().splitlines()

    second = CliRunner().invoke(app, [*args, "--n", "2", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4
    extended = (out / "results.jsonl").read_text().splitlines()
    assert extended[:2] == results  # the first run's results were kept, not redone
    assert json.loads((out / "summary.json").read_text())["verdicts"] == {"failed": 2, "passed": 2}


def test_evaluate_writes_a_report_without_rankers_for_plain_samples(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}) + "\n")
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["eval", "--samples", str(samples), "--workers", "1", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    page = report.read_text()
    assert len(PNG.findall(page)) == 1 and "pass@1 by ranker" not in page
