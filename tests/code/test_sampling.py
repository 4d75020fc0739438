"""Sampling from a backend (a fake one here), prompt modes, resuming, and ranking."""

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from alignlab.code.evaluate import evaluate
from alignlab.code.problems import Problem, load_problems
from alignlab.code.ranking import Candidate, join, pass_at_1_by_ranker
from alignlab.code.sampling import CODEX_STOP, SampleConfig, code_to_completion, extract_code, sample
from alignlab.code.sandbox import Sandbox
from alignlab.models.base import Backend, Continuation, Generation, Prompt, SamplingParams, TokenEvent


class FakeBackend:
    """Answers each prompt with ``reply(prompt, call)``; log-prob of token i is -(i + 1) / 10."""

    def __init__(self, reply: Callable[[Prompt, int], str]) -> None:
        self.name = "fake"
        self.context_length: int | None = None
        self.reply = reply
        self.calls: list[tuple[list[Prompt], SamplingParams]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            text = self.reply(prompt, len(self.calls))
            for stop in params.stop:
                text = text.split(stop)[0]
            tokens = text.split(" ")
            out.append(Generation(text, tokens, [-(i + 1) / 10 for i in range(len(tokens))], "stop", 5))
        return out

    def stream(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> Iterator[TokenEvent]:
        raise NotImplementedError

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = lambda row: False,
    ) -> Iterator[tuple[int, TokenEvent]]:
        raise NotImplementedError

    def loglikelihood(self, requests: Sequence[tuple[Prompt, str]]) -> list[Continuation]:
        raise NotImplementedError

    def hidden_states(self, prompts: Sequence[Prompt]) -> list[npt.NDArray[np.float32]]:
        raise NotImplementedError


def problems(count: int = 3) -> list[Problem]:
    return list(load_problems().values())[:count]


def by_prompt(prompt: Prompt) -> Problem:
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    return next(p for p in load_problems().values() if p.prompt in text)


def test_fake_backend_satisfies_the_protocol() -> None:
    assert isinstance(FakeBackend(lambda p, c: ""), Backend)


def test_completion_mode_cuts_at_codex_stops(sandbox: Sandbox, tmp_path: Path) -> None:
    backend = FakeBackend(lambda p, c: by_prompt(p).canonical_solution + "\n\ndef unrelated():\n    pass\n")
    out = tmp_path / "samples.jsonl"
    assert sample(backend, problems(), SampleConfig(n=2, temperature=0.8), out) == 6
    assert backend.calls[0][1].stop == CODEX_STOP
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all("unrelated" not in r["completion"] for r in records)
    assert all(r["logprobs"] and r["mean_logprob"] < 0 for r in records)
    summary = evaluate(out, tmp_path / "results.jsonl", sandbox=sandbox)
    assert summary["pass_at_k"]["pass@1"] == 1.0


def test_instruct_mode_turns_a_code_block_into_a_runnable_completion(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    def reply(prompt: Prompt, call: int) -> str:
        assert isinstance(prompt, list) and prompt[0]["role"] == "user"
        problem = by_prompt(prompt)
        return f"Sure! Here it is:\n```python\n{problem.prompt}{problem.canonical_solution}```\nDone."

    out = tmp_path / "samples.jsonl"
    sample(FakeBackend(reply), problems(5), SampleConfig(mode="instruct"), out)
    summary = evaluate(out, tmp_path / "results.jsonl", sandbox=sandbox)
    assert summary["verdicts"] == {"passed": 5}


def test_code_extraction() -> None:
    problem = problems(1)[0]
    assert extract_code("no fences at all") == "no fences at all"
    assert extract_code("```\nx = 1\n```\n```py\ndef f():\n    pass\n```") == "def f():\n    pass\n"
    body = code_to_completion(problem, "return True")
    assert body == "    return True\n"
    full = code_to_completion(problem, f"def {problem.entry_point}(numbers, threshold):\n    return False\n")
    compile(problem.prompt + full, "<test>", "exec")


def test_sampling_resumes_without_duplicates(tmp_path: Path) -> None:
    def flaky(prompt: Prompt, call: int) -> str:
        if call == 2:
            raise RuntimeError("connection lost")
        return "    return None\n"

    out = tmp_path / "samples.jsonl"
    config = SampleConfig(n=2, batch_size=2)
    with pytest.raises(RuntimeError):
        sample(FakeBackend(flaky), problems(), config, out)
    assert len(out.read_text().splitlines()) == 2
    backend = FakeBackend(lambda p, c: "    return None\n")
    assert sample(backend, problems(), config, out) == 4
    keys = [(r["task_id"], r["completion_id"]) for r in map(json.loads, out.read_text().splitlines())]
    assert sorted(keys) == sorted({(p.task_id, i) for p in problems() for i in range(2)})


def test_rankers_pass_at_1() -> None:
    tasks = {
        "a": [Candidate(-0.1, -5.0, True), Candidate(-0.5, -1.0, False)],
        "b": [Candidate(-0.2, -2.0, False), Candidate(-0.9, -3.0, True), Candidate(-0.9, -9.0, False)],
    }
    scores = pass_at_1_by_ranker(tasks)
    assert scores["mean_logprob"] == 0.5  # a: picks the pass; b: picks the failure
    assert scores["sum_logprob"] == 0.0  # a: -1.0 fails; b: -2.0 fails
    assert scores["random"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert scores["oracle"] == 1.0


def test_join_needs_results(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        json.dumps({"task_id": "T", "completion": "", "mean_logprob": -1, "sum_logprob": -2}) + "\n"
    )
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"task_id": "T", "completion_id": 0, "passed": True}) + "\n")
    assert join(samples, results) == {"T": [Candidate(-1.0, -2.0, True)]}
    results.write_text("")
    from alignlab.errors import DataError

    with pytest.raises(DataError, match="evaluate first"):
        join(samples, results)
