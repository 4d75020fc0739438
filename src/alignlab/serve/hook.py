"""The one hook through which the server is guarded (the guard's policy lives in :mod:`alignlab.guard`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol

from alignlab.models.base import ChatMessage, TokenEvent


class GuardHook(Protocol):
    """The one hook through which the server is guarded; the policy lives in the guard.

    :class:`alignlab.guard.streaming.StreamingGuard` is the implementation: it decides what
    of a chat's event stream may reach the client and when.
    """

    @property
    def reads_activations(self) -> bool:
        """Whether the guard reads the policy's hidden states (they are then computed while decoding)."""
        ...

    def screen(
        self,
        events: AsyncGenerator[TokenEvent, None],
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        trace_to: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[TokenEvent]:
        """The events the client may see (``stream=False``: nothing before the whole answer is checked).

        With ``trace_to`` the guard appends the exchange's per-token trace to it when it ends.
        """
        ...

    def check(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        """The verdict on a conversation, optionally ending with the assistant's reply."""
        ...

    def stats_dict(self) -> dict[str, Any]:
        """Counters for ``/v1/guard/stats``."""
        ...
