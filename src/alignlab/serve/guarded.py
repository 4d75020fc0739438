"""The guard in the serving path: every token is checked before the client sees it.

Tokens pass through a hold-back buffer: a token is released only once it and the ``N``
tokens after it have been checked, so when the exchange is flagged the buffer is dropped,
generation is cancelled, and the stream ends with the standard refusal — the same text
whichever stage fired. Every verdict is logged as one JSON line (conversation text only
when asked); tokens released after a flag are counted, and the count must stay 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alignlab.models.base import ChatMessage, TokenEvent

REFUSAL = "I'm sorry, but I can't help with that."
verdict_log = logging.getLogger("alignlab.guard.verdicts")


class Session(Protocol):
    """One conversation's streaming checks (see :mod:`alignlab.guard.session`)."""

    classifier_seconds: float
    """Time the exchange classifier has spent on this conversation (0 while it never ran)."""

    def prompt(self, hidden: Any) -> Any: ...
    def cheap(self) -> bool: ...
    def token(self, token_id: int | None, text: str, hidden: Any) -> Any: ...
    def end(self) -> Any: ...


@dataclass
class GuardStats:
    """Counters the server exposes at ``/v1/guard/stats``."""

    exchanges: int = 0
    classifier_exchanges: int = 0
    """Exchanges the exchange classifier read (escalated by the probe, or every one without a probe)."""
    flagged: int = 0
    flagged_by_stage: dict[str, int] = field(default_factory=dict)
    released_after_flag: int = 0


@dataclass
class ServingGuard:
    """How the server guards: a session per conversation, the hold-back window, logging.

    Args:
        new_session: conversation → session.
        reads_activations: sessions want the policy's hidden states (local policy + probe).
        hold_back: tokens held back before release.
        log_text: include the conversation in verdict logs.
        check: conversation → verdict dict, for ``POST /v1/guard/check``.
    """

    new_session: Callable[[Sequence[ChatMessage]], Session]
    reads_activations: bool
    check: Callable[[Sequence[ChatMessage]], dict[str, Any]]
    hold_back: int = 4
    log_text: bool = False
    stats: GuardStats = field(default_factory=GuardStats)

    def log(self, messages: Sequence[ChatMessage], verdict: Any, seconds: float, tokens: int) -> None:
        record: dict[str, Any] = {
            "flagged": bool(verdict and verdict.flagged),
            "stage": getattr(verdict, "stage", None),
            "scores": getattr(verdict, "scores", None),
            "latency_ms": round(seconds * 1000, 2),
            "tokens": tokens,
            "released_after_flag": self.stats.released_after_flag,
        }
        if self.log_text:
            record["conversation"] = list(messages)
        verdict_log.info(json.dumps(record, default=str))


async def guarded(
    guard: ServingGuard, events: AsyncGenerator[TokenEvent, None], messages: Sequence[ChatMessage]
) -> AsyncIterator[TokenEvent]:
    """Check ``events`` as they come; release them ``hold_back`` tokens late; refuse on a flag."""
    session = guard.new_session(messages)
    held: deque[TokenEvent] = deque()
    verdict: Any = None
    flagged_at: float | None = None
    start, tokens = time.perf_counter(), 0
    guard.stats.exchanges += 1
    try:
        if not guard.reads_activations:
            verdict = await asyncio.to_thread(session.prompt, None)
        while verdict is None:
            event = await anext(events, None)
            if event is None:
                break
            if event.prompt:
                verdict = await asyncio.to_thread(session.prompt, event.hidden)
            elif event.finish_reason is None:
                tokens += 1
                if session.cheap():  # a probe step costs microseconds: a thread hop per token would cost more
                    verdict = session.token(event.token_id, event.text, event.hidden)
                else:
                    verdict = await asyncio.to_thread(session.token, event.token_id, event.text, event.hidden)
                event.hidden = None
                held.append(event)
            else:
                verdict = await asyncio.to_thread(session.end)
                if verdict is None:
                    held.append(event)
                    break
            if verdict is not None:
                flagged_at = time.perf_counter()
                break
            while len(held) > guard.hold_back:
                yield held.popleft()
    finally:
        await events.aclose()  # cancels generation when flagged or when the client left
        if session.classifier_seconds > 0:
            guard.stats.classifier_exchanges += 1
    if verdict is not None:
        guard.stats.flagged += 1
        guard.stats.flagged_by_stage[verdict.stage] = guard.stats.flagged_by_stage.get(verdict.stage, 0) + 1
        held.clear()  # checked-and-flagged tokens never leave the server
        guard.log(messages, verdict, (flagged_at or time.perf_counter()) - start, tokens)
        yield TokenEvent(REFUSAL, finish_reason="content_filter")
        return
    guard.log(messages, getattr(session, "last", None), time.perf_counter() - start, tokens)
    while held:
        yield held.popleft()
