"""Batch generation over a JSONL file of prompts: resumable, with a progress bar.

Each input line holds ``messages`` (a chat) or ``prompt`` (raw text), and optionally an
``id`` (default: the line number). Each output line holds the id, the text, its tokens and
log-probabilities, the finish reason and the provenance. A rerun skips ids already written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignlab.core.config import option
from alignlab.errors import DataError
from alignlab.models.base import Backend, Prompt, SamplingParams


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of ``alignlab generate``."""

    model: str = option(
        "smollm2",
        "model spec: smollm2, hf:PATH, openai:URL (or openai:URL#MODEL), scripted or scripted:REPLY",
    )
    max_new_tokens: int = option(128, "most tokens generated per prompt")
    temperature: float = option(0.0, "sampling temperature; 0 is greedy")
    top_p: float = option(1.0, "nucleus sampling mass")
    stop: tuple[str, ...] = option((), "stop string (repeat for several)")
    seed: int | None = option(None, "random seed for sampling")
    batch_size: int = option(16, "prompts decoded together")

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.max_new_tokens, self.temperature, self.top_p, self.stop, self.seed)


def read_prompts(path: Path) -> Iterator[tuple[str, Prompt]]:
    """``(id, prompt)`` for each line of a prompts JSONL file.

    Raises:
        DataError: a line has neither ``messages`` nor ``prompt``, or a malformed chat.
    """
    from alignlab.core.jsonl import read_jsonl

    for lineno, record in enumerate(read_jsonl(path), start=1):
        ident = str(record.get("id", lineno))
        if isinstance(record.get("prompt"), str):
            yield ident, record["prompt"]
            continue
        messages = record.get("messages")
        if not isinstance(messages, list) or not all(_is_message(m) for m in messages) or not messages:
            raise DataError(
                path, lineno, "expected 'prompt' (a string) or 'messages' (a list of {role, content})"
            )
        yield ident, [{"role": m["role"], "content": m["content"]} for m in messages]


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def generate_file(backend: Backend, config: GenerateConfig, source: Path, target: Path) -> int:
    """Generate for every prompt of ``source`` not yet in ``target``; returns how many were written."""
    from alignlab.core.progress import progress_bar
    from alignlab.core.provenance import hash_file, make_provenance
    from alignlab.core.results import ResultsFile

    prompts = list(read_prompts(source))
    results = ResultsFile(target, "id")
    todo = [(i, p) for i, p in prompts if i not in results]
    provenance = make_provenance(
        "generate",
        {**asdict(config), "model_name": backend.name},
        data_hash=hash_file(source),
        seed=config.seed,
    ).to_dict()
    written = 0
    with progress_bar() as bar:
        task = bar.add_task(
            f"generating with {backend.name}", total=len(prompts), completed=len(prompts) - len(todo)
        )
        for start in range(0, len(todo), config.batch_size):
            chunk = todo[start : start + config.batch_size]
            for (ident, _), gen in zip(
                chunk, backend.generate([p for _, p in chunk], config.sampling()), strict=True
            ):
                record = {"id": ident, **asdict(gen), "provenance": provenance}
                written += results.append(record)
            bar.update(task, advance=len(chunk))
    return written
