"""The ``evalplus`` prompt mode (a prefilled reply, a sanitised script) and continuous sampling."""

import json
from pathlib import Path
from typing import Any

import pytest
from test_sampling import FakeBackend, problems

from alignlab.code.evaluate import evaluate
from alignlab.code.problems import Problem, load_problems
from alignlab.code.sampling import (
    EVALPLUS_RESPONSE,
    MODES,
    SampleConfig,
    definitions_only,
    sample,
    sample_continuous,
)
from alignlab.code.sandbox import Sandbox
from alignlab.errors import CapabilityError
from alignlab.models.base import Prompt

SCRIPT_TAIL = "\n\n# Test cases\nprint({name}([]))\nassert {name}(None) == 'never'\n"


def asked(prompt: Prompt) -> Problem:
    """The problem whose prompt the user message quotes."""
    assert isinstance(prompt, list)
    return next(p for p in load_problems().values() if p.prompt.strip() in prompt[0]["content"])


def test_the_prompt_quotes_the_problem_and_prefills_the_reply() -> None:
    problem = problems(1)[0]
    user, assistant = MODES.get("evalplus").prompt(problem)
    assert user["role"] == "user" and f"```\n{problem.prompt.strip()}\n```\n" in user["content"]
    assert assistant == {"role": "assistant", "content": f"{EVALPLUS_RESPONSE}\n```python\n"}
    assert MODES.get("evalplus").stop == ("\n```\n",)


def test_a_script_with_its_own_failing_checks_passes_on_its_function(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    def reply(prompt: Prompt, call: int) -> str:
        problem = asked(prompt)
        tail = SCRIPT_TAIL.format(name=problem.entry_point)
        return problem.prompt + problem.canonical_solution + tail + "```"

    out = tmp_path / "samples.jsonl"
    sample(FakeBackend(reply), problems(4), SampleConfig(mode="evalplus"), out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all("assert" in r["raw"] and "assert" not in r["completion"] for r in records)
    summary = evaluate(out, tmp_path / "results.jsonl", sandbox=sandbox)
    assert summary["verdicts"] == {"passed": 4}


def test_definitions_only_keeps_what_the_tests_can_call() -> None:
    code = (
        "import math\nfrom typing import List\n\nLIMIT: int = 3\nTABLE = {1: 2}\n\n"
        "@staticmethod\n@other\ndef f(x):\n    return x\n\nclass C:\n    pass\n\n"
        "print(f(1))\nfor i in range(3):\n    f(i)\nif __name__ == '__main__':\n    f(2)\n"
    )
    kept = definitions_only(code)
    assert kept == (
        "import math\n\nfrom typing import List\n\nLIMIT: int = 3\n\nTABLE = {1: 2}\n\n"
        "@staticmethod\n@other\ndef f(x):\n    return x\n\nclass C:\n    pass\n"
    )
    assert (
        definitions_only("def f(:\n    pass\nprint(1)") == "def f(:\n    pass\nprint(1)"
    )  # the verdict says why


def test_continuous_sampling_matches_batched_sampling_and_resumes(tiny_backend: Any, tmp_path: Path) -> None:
    config = SampleConfig(
        model="tiny", n=2, temperature=0.0, max_new_tokens=12, mode="completion", batch_size=3
    )
    # short problems: the tiny model's context is 128 tokens
    tasks = [Problem(f"T/{i}", f"def f{i}(x):\n", "", f"f{i}") for i in range(3)]
    batched, continuous = tmp_path / "batched.jsonl", tmp_path / "continuous.jsonl"
    sample(tiny_backend, tasks, config, batched)
    seen: list[str] = []
    assert (
        sample_continuous(
            tiny_backend, tasks, config, continuous, on_sample=lambda r: seen.append(r["task_id"])
        )
        == 6
    )

    def rows(path: Path) -> dict[tuple[str, int], Any]:
        records = map(json.loads, path.read_text().splitlines())
        return {(r["task_id"], r["completion_id"]): (r["raw"], r["finish_reason"]) for r in records}

    assert rows(continuous) == rows(batched) and len(seen) == 6
    assert sample_continuous(tiny_backend, tasks, config, continuous) == 0
    assert len(continuous.read_text().splitlines()) == 6


def test_continuous_sampling_needs_a_continuous_backend(tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match="cannot batch continuously"):
        sample_continuous(FakeBackend(lambda p, c: ""), problems(1), SampleConfig(), tmp_path / "s.jsonl")


def test_the_hf_backend_continues_a_prefilled_reply(tiny_backend: Any) -> None:
    user = [{"role": "user", "content": "Write f."}]
    opened = tiny_backend.encode(user)
    prefilled = tiny_backend.encode([*user, {"role": "assistant", "content": "Here:\n```python\n"}])
    assert prefilled[: len(opened)] == opened
    assert tiny_backend.tokenizer.decode(prefilled[len(opened) :]) == "Here:\n```python\n"
