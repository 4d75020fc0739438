"""The ``scripted`` backend: a deterministic stand-in model for tests and dry runs.

It answers with a fixed reply (or a function of the prompt), one word-piece per token,
with deterministic log-probabilities and hidden states derived from the token text, so a
whole pipeline (server, guard, evaluation) can run with no weights. It is a test seam;
everything it serves also runs on the real ``hf`` path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from alignlab.models.base import Continuation, Generation, Prompt, SamplingParams, TokenEvent, collect

_PIECE = re.compile(r"\s*\S+|\s+")


def _last_user(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m["role"] == "user"]
    return users[-1] if users else ""


class ScriptedBackend:
    """A backend whose replies are scripted.

    Args:
        reply: the reply text, or a function of the prompt; ``None`` echoes the last user turn.
        layers: number of hidden-state layers reported (plus the embedding layer).
        hidden_size: width of the reported hidden states.
        name: the model name.
    """

    def __init__(
        self,
        reply: str | Callable[[Prompt], str] | None = None,
        *,
        layers: int = 2,
        hidden_size: int = 8,
        name: str = "scripted",
        context_length: int = 4096,
    ) -> None:
        self._reply = reply
        self.layers = layers
        self.hidden_size = hidden_size
        self.name = name
        self.context_length: int | None = context_length

    def reply(self, prompt: Prompt) -> str:
        if self._reply is None:
            return _last_user(prompt)
        return self._reply if isinstance(self._reply, str) else self._reply(prompt)

    def tokenize(self, text: str) -> list[str]:
        return _PIECE.findall(text)

    def count_tokens(self, prompt: Prompt) -> int:
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        return len(self.tokenize(text))

    def _vector(self, piece: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(piece.encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.layers + 1, self.hidden_size)).astype(np.float32)

    def _logprob(self, piece: str) -> float:
        return -((len(piece) % 7) + 1) / 10

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = lambda row: False,
    ) -> Iterator[tuple[int, TokenEvent]]:
        """Stream each row in turn (the scripted model has nothing to batch)."""
        for row, (prompt, sp) in enumerate(zip(prompts, params, strict=True)):
            for event in self._row(prompt, sp, hidden_states, lambda r=row: cancelled(r)):  # type: ignore[misc]
                yield row, event

    def _row(
        self, prompt: Prompt, params: SamplingParams, hidden: bool, cancelled: Callable[[], bool]
    ) -> Iterator[TokenEvent]:
        text = self.reply(prompt)
        cut = min((i for s in params.stop if (i := text.find(s)) >= 0), default=-1)
        finish = "stop" if cut >= 0 else "length"
        pieces = self.tokenize(text if cut < 0 else text[:cut])
        if cut < 0 and len(pieces) <= params.max_new_tokens:
            finish = "stop"
        for piece in pieces[: params.max_new_tokens]:
            vector = self._vector(piece) if hidden else None
            yield TokenEvent(piece, piece, None, self._logprob(piece), vector)
            if cancelled():
                yield TokenEvent("", finish_reason="cancelled")
                return
        yield TokenEvent("", finish_reason=finish)  # type: ignore[arg-type]

    def stream(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> Iterator[TokenEvent]:
        return self._row(prompt, params, hidden_states, lambda: False)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        events = self.stream_batch(prompts, [params] * len(prompts))
        return collect(events, [self.count_tokens(p) for p in prompts])

    def loglikelihood(self, requests: Sequence[tuple[Prompt, str]]) -> list[Continuation]:
        result = []
        for prompt, continuation in requests:
            lps = [self._logprob(p) for p in self.tokenize(continuation)]
            greedy = self.reply(prompt).startswith(continuation)
            result.append(Continuation(sum(lps), lps, greedy))
        return result

    def hidden_states(self, prompts: Sequence[Prompt]) -> list[npt.NDArray[np.float32]]:
        result = []
        for prompt in prompts:
            text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
            pieces = self.tokenize(text) or [""]
            result.append(np.stack([self._vector(p) for p in pieces], axis=1))
        return result
