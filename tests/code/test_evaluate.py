"""Evaluating samples files: canonical solutions pass, reward hacks fail, runs repeat and resume."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from alignlab.code.evaluate import EvaluateConfig, evaluate
from alignlab.code.problems import Sample, load_problems
from alignlab.code.sandbox import Sandbox
from alignlab.errors import DataError

ALWAYS_EQUAL = (
    "    class Anything:\n"
    "        def __eq__(self, other):\n"
    "            return True\n"
    "        def __ne__(self, other):\n"
    "            return False\n"
    "    return Anything()\n"
)


def write_samples(path: Path, samples: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def test_all_canonical_solutions_pass(sandbox: Sandbox, tmp_path: Path) -> None:
    problems = load_problems()
    assert len(problems) == 164
    samples = [{"task_id": p.task_id, "completion": p.canonical_solution} for p in problems.values()]
    summary = evaluate(write_samples(tmp_path / "s.jsonl", samples), tmp_path / "r.jsonl", sandbox=sandbox)
    assert summary["verdicts"] == {"passed": 164}
    assert summary["pass_at_k"] == {"pass@1": 1.0}
    assert summary["isolation"]["limits"]
    assert summary["provenance"]["component"] == "code.evaluate"
    assert summary["provenance"]["data_hash"].startswith("sha256:")
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(records) == 164
    assert set(records[0]) >= {"task_id", "completion_id", "verdict", "detail", "cpu_seconds", "wall_seconds"}


def test_always_equal_objects_fail_in_strict_mode(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.config.strict
    task_ids = list(load_problems())[:20]
    samples = [{"task_id": t, "completion": ALWAYS_EQUAL} for t in task_ids]
    summary = evaluate(write_samples(tmp_path / "s.jsonl", samples), tmp_path / "r.jsonl", sandbox=sandbox)
    assert summary["verdicts"] == {"failed": 20}
    details = [json.loads(line)["detail"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert all("strict mode" in d for d in details)


def mixed_samples() -> list[dict[str, object]]:
    problems = list(load_problems().values())[:12]
    samples: list[dict[str, object]] = []
    for i, p in enumerate(problems):
        samples.append({"task_id": p.task_id, "completion": p.canonical_solution})
        samples.append({"task_id": p.task_id, "completion": "    return None\n"})
        if i % 4 == 0:
            samples.append({"task_id": p.task_id, "completion": "    import math\n    return math.nan\n"})
    samples.append({"task_id": problems[0].task_id, "completion": "    while True:\n        pass\n"})
    return samples


def test_repeated_runs_give_identical_verdicts(sandbox: Sandbox, tmp_path: Path) -> None:
    path = write_samples(tmp_path / "s.jsonl", mixed_samples())
    first = evaluate(path, tmp_path / "r1.jsonl", sandbox=sandbox)
    second = evaluate(path, tmp_path / "r2.jsonl", sandbox=sandbox)

    def verdicts(name: str) -> list[tuple[str, int, str, str]]:
        lines = (tmp_path / name).read_text().splitlines()
        return [(r["task_id"], r["completion_id"], r["verdict"], r["detail"]) for r in map(json.loads, lines)]

    assert verdicts("r1.jsonl") == verdicts("r2.jsonl")
    assert first["pass_at_k"] == second["pass_at_k"]
    assert first["verdicts"]["timed_out"] == 1


def test_an_interrupted_run_resumes_where_it_stopped(sandbox: Sandbox, tmp_path: Path) -> None:
    path = write_samples(tmp_path / "s.jsonl", mixed_samples()[:-1])
    results = tmp_path / "r.jsonl"

    def stop_after_five(samples: Iterator[Sample], total: int) -> Iterator[Sample]:
        for index, sample in enumerate(samples):
            if index == 5:
                raise KeyboardInterrupt
            yield sample

    with pytest.raises(KeyboardInterrupt):
        evaluate(path, results, sandbox=sandbox, progress=stop_after_five)
    done = len(results.read_text().splitlines())
    assert 0 < done <= 5
    seen: list[int] = []

    def count(samples: Iterator[Sample], total: int) -> Iterator[Sample]:
        seen.append(total)
        yield from samples

    summary = evaluate(path, results, sandbox=sandbox, progress=count)
    total = len(mixed_samples()) - 1
    assert seen == [total - done]
    assert summary["samples"] == total
    keys = [(r["task_id"], r["completion_id"]) for r in map(json.loads, results.read_text().splitlines())]
    assert len(keys) == len(set(keys)) == total


def test_bad_samples_files_name_the_problem(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"task_id": "HumanEval/0", "completion": ""}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        evaluate(bad_json, tmp_path / "r.jsonl")
    missing = write_samples(tmp_path / "missing.jsonl", [{"task_id": "HumanEval/0"}])
    with pytest.raises(DataError, match=r"missing\.jsonl:1: .*completion"):
        evaluate(missing, tmp_path / "r.jsonl")
    unknown = write_samples(
        tmp_path / "unknown.jsonl",
        [{"task_id": f"Nope/{i}", "completion": ""} for i in range(4)]
        + [{"task_id": "HumanEval/1", "completion": ""}],
    )
    with pytest.raises(DataError, match=r"4 samples name task_ids not in the problem set, e\.g\. 'Nope/0'"):
        evaluate(unknown, tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_custom_problem_sets_load_from_a_path(sandbox: Sandbox, tmp_path: Path) -> None:
    problem = {
        "task_id": "Mine/0",
        "prompt": "def double(x):\n",
        "test": "def check(candidate):\n    assert candidate(2) == 4\n",
        "entry_point": "double",
    }
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps(problem) + "\n")
    samples = write_samples(
        tmp_path / "s.jsonl",
        [
            {"task_id": "Mine/0", "completion": "    return 2 * x\n"},
            {"task_id": "Mine/0", "completion": "    return x\n"},
        ],
    )
    summary = evaluate(samples, tmp_path / "r.jsonl", EvaluateConfig(problems=str(problems)), sandbox=sandbox)
    assert summary["pass_at_k"] == {"pass@1": 0.5}
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({**problem, "entry_point": None}) + "\n")
    with pytest.raises(DataError, match=r"broken\.jsonl:1: .*entry_point"):
        load_problems(broken)
