"""What the guard needs of the policy it reads: the narrow interface instead of a whole backend.

The probe reads the policy's own activations and the exchange classifier is built on its
first blocks, so a guard needs the policy's weights, its tokenizer and three operations:
encode a conversation, run a forward pass that hands back hidden states, and stream a
generation with hidden states. :class:`~alignlab.models.hf.HFBackend` provides them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from alignlab.models.base import Prompt, SamplingParams, TokenEvent

T = TypeVar("T")


@runtime_checkable
class GuardPolicy(Protocol):
    """A local policy model the guard can read."""

    @property
    def name(self) -> str: ...

    @property
    def context_length(self) -> int | None: ...

    @property
    def model(self) -> Any:
        """The transformers model (its config, base model and weights)."""
        ...

    @property
    def tokenizer(self) -> Any:
        """Its tokenizer (text → ids, ids → text, the chat template)."""
        ...

    def encode(self, prompt: Prompt) -> list[int]:
        """A prompt's token ids (a chat gets the template and the assistant header)."""
        ...

    def forward_rows(
        self, rows: list[list[int]], reduce: Callable[[int, Any], T], *, hidden: bool
    ) -> list[T]:
        """One forward pass over token rows; ``reduce(row, states)`` picks what to return of each."""
        ...

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = ...,
    ) -> Iterator[tuple[int, TokenEvent]]:
        """Generate a batch, streaming ``(row, event)`` pairs with hidden states when asked."""
        ...


def load_policy(spec: str) -> GuardPolicy:
    """The local policy a guard reads, loaded from a model spec.

    Raises:
        ConfigError: the spec names a model the guard cannot read (a remote endpoint, say).
    """
    from alignlab.errors import ConfigError
    from alignlab.models import load_backend

    policy = load_backend(spec)
    if not isinstance(policy, GuardPolicy):
        raise ConfigError(f"a guard reads a local policy's weights; {spec!r} is not a local model")
    return policy
