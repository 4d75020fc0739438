"""The model-backend interface every pillar uses.

A backend is anything that can, for a batch of prompts, generate text with per-token
log-probabilities, stream token events, score given continuations, and (where it runs
the weights itself) return per-token hidden states of every layer. A prompt is either raw
text or a chat (a list of ``{"role", "content"}`` messages, to which the backend applies
its chat template).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np
import numpy.typing as npt


class ChatMessage(TypedDict):
    """One chat turn."""

    role: str
    content: str


Prompt = str | list[ChatMessage]
"""Raw text (used as is) or a chat (the backend applies its chat template)."""

FinishReason = Literal["stop", "length", "cancelled", "content_filter"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a continuation.

    ``temperature == 0`` means greedy decoding. ``stop`` strings end the text before them.
    ``seed`` makes sampling repeatable. ``top_logprobs`` asks for that many most likely
    alternatives at each step, where the backend can give them.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_logprobs: int = 0


@dataclass
class Generation:
    """One generated continuation.

    ``logprobs[i]`` is the log-probability, under the model's raw (temperature 1)
    distribution, of ``tokens[i]``. ``text`` is the decoded continuation with any stop
    string removed; ``tokens`` may extend past it by the tokens that formed the stop string.
    """

    text: str
    tokens: list[str]
    logprobs: list[float]
    finish_reason: FinishReason
    prompt_tokens: int
    token_ids: list[int] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@dataclass
class TokenEvent:
    """One streamed step: a token, or the end of the stream.

    ``text`` is the new text this token releases (may be empty while a multi-byte
    character or a possible stop string is pending). ``hidden`` holds, when asked for,
    this token's hidden state at every layer, shape ``(layers + 1, hidden_size)``: the
    activations the model computed to predict the *next* token after this one is fed.
    The last event has ``finish_reason`` set and no token. With hidden states asked for,
    a backend that runs the weights first sends one ``prompt`` event whose ``hidden`` is
    the prompt's activations, ``(layers + 1, prompt_tokens, hidden_size)``.
    """

    text: str
    token: str | None = None
    token_id: int | None = None
    logprob: float | None = None
    hidden: npt.NDArray[np.float32] | None = None
    finish_reason: FinishReason | None = None
    top_logprobs: list[tuple[str, float]] = field(default_factory=list)
    prompt: bool = False


@dataclass(frozen=True)
class Continuation:
    """The log-likelihood of a given continuation after a prompt.

    ``is_greedy`` says whether greedy decoding would have produced every token of it.
    """

    logprob: float
    token_logprobs: list[float]
    is_greedy: bool

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, len(self.token_logprobs))


@runtime_checkable
class Backend(Protocol):
    """A language model alignlab can use.

    Implementations raise :class:`alignlab.errors.CapabilityError` for what they cannot do
    (e.g. hidden states over HTTP) and :class:`alignlab.errors.ContextLengthError` for
    prompts that do not fit.
    """

    @property
    def name(self) -> str:
        """The model's name, as served and recorded."""
        ...

    @property
    def context_length(self) -> int | None:
        """Most tokens (prompt plus completion) the model takes, where known."""
        ...

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """Generate one continuation per prompt, batched where the backend can batch."""
        ...

    def stream(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> Iterator[TokenEvent]:
        """Stream one continuation token by token; closing the iterator cancels it."""
        ...

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = ...,
    ) -> Iterator[tuple[int, TokenEvent]]:
        """Stream a batch together as ``(row, event)`` pairs; each row ends with a ``finish_reason``.

        ``cancelled(row)`` is polled as the row runs; True ends it with ``"cancelled"``.
        """
        ...

    def loglikelihood(self, requests: Sequence[tuple[Prompt, str]]) -> list[Continuation]:
        """Score each ``(prompt, continuation)`` pair."""
        ...

    def hidden_states(self, prompts: Sequence[Prompt]) -> list[npt.NDArray[np.float32]]:
        """Per-token hidden states of every layer, one array ``(layers + 1, tokens, hidden)`` per prompt."""
        ...


@dataclass(frozen=True)
class Request:
    """One request for continuous batching: a caller's key, the prompt and its parameters."""

    key: Any
    prompt: Prompt
    params: SamplingParams


@runtime_checkable
class ContinuousBackend(Protocol):
    """A backend that lets new requests join a running batch between decoding steps."""

    def stream_continuous(
        self,
        admit: Callable[[], Sequence[Request]],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[Any], bool] = ...,
    ) -> Iterator[tuple[Any, TokenEvent | BaseException]]:
        """Decode while ``admit()`` (polled before every step) adds requests; events carry their keys."""
        ...


def collect(events: Iterable[tuple[int, TokenEvent]], prompt_tokens: list[int]) -> list[Generation]:
    """Gather a batch's streamed events into one :class:`Generation` per row."""
    gens = [Generation("", [], [], "length", n) for n in prompt_tokens]
    for row, event in events:
        gen = gens[row]
        gen.text += event.text
        if event.finish_reason is not None:
            gen.finish_reason = event.finish_reason
        elif event.token is not None:
            gen.tokens.append(event.token)
            if event.token_id is not None:
                gen.token_ids.append(event.token_id)
            gen.logprobs.append(event.logprob if event.logprob is not None else 0.0)
    return gens
