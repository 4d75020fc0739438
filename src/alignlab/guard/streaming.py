"""The streaming guard: what may leave the server, and when.

**The release rule.** A response is a sequence of units (each token event, then the end of
the stream). A unit leaves the server only when every stage that the cascade's current state
requires has read it, and has read the ``hold_back`` units after it too (the end of the
stream needs no look-ahead: nothing follows it). With a local policy the probe reads every
token, and once the probe escalates the exchange classifier reads every token as well;
with a remote upstream the classifier reads every token. The sessions say which stages
they require and how far each has read (:mod:`alignlab.guard.session`); this module alone
decides release.

**One reply on a flag.** When the exchange is flagged, held units are dropped, generation is
cancelled and the reply ends with the standard refusal as its own final unit (after a
paragraph break where text was already released), ``finish_reason="content_filter"``.
A non-streamed reply releases nothing before the whole answer is checked, so it is either
the whole checked answer or the refusal alone. The client sees the same refusal whichever
stage fired; the stage goes to the server's verdict log only.

**The ledger.** For every released unit each session records which stages had read it and
which were required; ``/v1/guard/stats`` reports ``released_unread`` from it.

**Fail closed.** A stage that raises refuses the exchange (logged); units that no required
stage read by the end are never released (the exchange is refused); a policy failure
mid-stream releases nothing unread and ends the stream with the error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from alignlab.errors import ConfigError
from alignlab.models.base import ChatMessage, TokenEvent

REFUSAL = "I'm sorry, but I can't help with that."
BREAK = "\n\n"
"""Put between released text and the refusal, so the refusal never joins a half-written word."""

verdict_log = logging.getLogger("alignlab.guard.verdicts")
log = logging.getLogger(__name__)


class Session(Protocol):
    """One conversation's streaming checks (:class:`~alignlab.guard.session.ProbeSession` and peers)."""

    classifier_seconds: float
    last: Any
    trace: list[dict[str, float | None]]

    def required(self) -> tuple[str, ...]: ...
    def read(self) -> dict[str, int]: ...
    def prompt(self, hidden: Any) -> Any: ...
    def cheap(self) -> bool: ...
    def token(self, token_id: int | None, text: str, hidden: Any) -> Any: ...
    def end(self, text: str = "") -> Any: ...


@dataclass
class Ledger:
    """Which stages had read each released unit, and which stages were required when it left."""

    entries: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    def record(self, unit: int, reads: dict[str, int], required: Sequence[str]) -> None:
        read_by = tuple(sorted(s for s, n in reads.items() if n > unit))
        self.entries.append((read_by, tuple(sorted(required))))

    @property
    def released(self) -> int:
        return len(self.entries)

    @property
    def unread(self) -> int:
        """Released units some required stage had not read (the release rule says 0)."""
        return sum(not set(required) <= set(read) for read, required in self.entries)


@dataclass
class Exchange:
    """What the server keeps of one guarded exchange (the last few are kept for inspection)."""

    ledger: Ledger
    verdict: dict[str, Any] | None = None
    trace: list[dict[str, float | None]] = field(default_factory=list)
    outcome: str = "running"


@dataclass
class GuardStats:
    """Counters the server exposes at ``/v1/guard/stats``.

    Per-stage counts are deliberately absent: they would tell a client which stage fired.
    """

    exchanges: int = 0
    classifier_exchanges: int = 0
    """Exchanges the exchange classifier read (escalated by the probe, or every one without a probe)."""
    flagged: int = 0
    guard_errors: int = 0
    """Exchanges refused because a stage failed (fail closed)."""
    released: int = 0
    """Units released to clients (tokens, and each stream's end)."""
    released_unread: int = 0
    """Released units a required stage had not read (from the sessions' ledgers): must stay 0."""


@dataclass
class StreamingGuard:
    """How the server guards: a session per conversation, the hold-back window, logging.

    Args:
        new_session: conversation → session.
        reads_activations: sessions want the policy's hidden states (local policy + probe).
        checker: conversation (optionally ending with the assistant's reply) → verdict dict.
        hold_back: units after a unit that the required stages must have read before it leaves.
        log_text: include the conversation in verdict logs.

    Raises:
        ConfigError: a negative hold-back.
    """

    new_session: Callable[[Sequence[ChatMessage]], Session]
    reads_activations: bool
    checker: Callable[[Sequence[ChatMessage]], dict[str, Any]]
    hold_back: int = 4
    log_text: bool = False
    stats: GuardStats = field(default_factory=GuardStats)
    recent: deque[Exchange] = field(default_factory=lambda: deque(maxlen=64))

    def __post_init__(self) -> None:
        if self.hold_back < 0:
            raise ConfigError(f"--hold-back must be 0 or more, not {self.hold_back}")

    def check(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        """The verdict on a whole conversation, scored as serving scores it."""
        return self.checker(messages)

    def stats_dict(self) -> dict[str, Any]:
        return asdict(self.stats)

    def screen(
        self,
        events: AsyncGenerator[TokenEvent, None],
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        trace_to: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[TokenEvent]:
        """``events`` as the client may see them: released by the rule, or ending in the refusal.

        With ``trace_to``, the exchange's per-token trace (:func:`trace_of`) is appended to it
        when the exchange ends: the stage-1 score at every step, where it escalated, the
        classifier and ensemble scores, the thresholds and the verdict. Per-stage scores help an
        attacker; the server hands them out only where its ``--guard-trace`` setting allows.
        """
        return _screen(self, events, messages, stream, trace_to)

    def _log(self, messages: Sequence[ChatMessage], exchange: Exchange, seconds: float, tokens: int) -> None:
        record: dict[str, Any] = {
            **(exchange.verdict or {}),
            "outcome": exchange.outcome,
            "latency_ms": round(seconds * 1000, 2),
            "tokens": tokens,
            "released": exchange.ledger.released,
            "released_unread": exchange.ledger.unread,
        }
        if self.log_text:
            record["conversation"] = list(messages)
        verdict_log.info(json.dumps(record, default=str))


class _Run:
    """One exchange in flight: its session, held units and ledger."""

    def __init__(self, guard: StreamingGuard, messages: Sequence[ChatMessage], stream: bool) -> None:
        self.guard = guard
        self.session = guard.new_session(messages)
        self.stream = stream
        self.held: deque[tuple[int, TokenEvent]] = deque()
        self.units = 0
        self.exchange = Exchange(Ledger())
        self.released_text = False

    async def call(self, step: Callable[..., Any], *args: Any, inline: bool = False) -> Any:
        """A session step; a stage that raises flags the exchange (fail closed)."""
        try:
            return step(*args) if inline else await asyncio.to_thread(step, *args)
        except Exception:
            log.exception("a guard stage failed; refusing the exchange")
            self.guard.stats.guard_errors += 1
            return _Failure("guard_error")

    def hold(self, event: TokenEvent) -> None:
        self.held.append((self.units, event))
        self.units += 1

    def releasable(self, ended: bool) -> list[TokenEvent]:
        """Held units the rule lets go now (recorded in the ledger)."""
        if not self.stream and not ended:
            return []
        reads, required = self.session.read(), self.session.required()
        ready = min((reads.get(s, 0) for s in required), default=0)
        limit = ready if ended else ready - self.guard.hold_back
        out = []
        while self.held and self.held[0][0] < limit:
            unit, event = self.held.popleft()
            self.exchange.ledger.record(unit, reads, required)
            self.released_text = self.released_text or bool(event.text)
            out.append(event)
        return out

    def refusal(self) -> TokenEvent:
        self.held.clear()  # read-and-flagged (or unread) units never leave the server
        return TokenEvent(BREAK + REFUSAL if self.released_text else REFUSAL, finish_reason="content_filter")


@dataclass
class _Failure:
    """Stands for a verdict when the guard itself could not decide."""

    stage: str
    flagged: bool = True
    scores: dict[str, Any] = field(default_factory=dict)


async def _screen(
    guard: StreamingGuard,
    events: AsyncGenerator[TokenEvent, None],
    messages: Sequence[ChatMessage],
    stream: bool,
    trace_to: list[dict[str, Any]] | None,
) -> AsyncIterator[TokenEvent]:
    run = _Run(guard, messages, stream)
    session, exchange = run.session, run.exchange
    guard.stats.exchanges += 1
    guard.recent.append(exchange)
    verdict: Any = None
    ended = False
    start, tokens = time.perf_counter(), 0
    try:
        if not guard.reads_activations:
            verdict = await run.call(session.prompt, None)
        while verdict is None and not ended:
            event = await anext(events, None)
            if event is None or event.finish_reason is not None:
                ended = True
                verdict = await run.call(session.end, event.text if event else "")
                run.hold(event or TokenEvent("", finish_reason="stop"))
            elif event.prompt:
                verdict = await run.call(session.prompt, event.hidden, inline=session.cheap())
            else:
                tokens += 1
                verdict = await run.call(
                    session.token, event.token_id, event.text, event.hidden, inline=session.cheap()
                )
                event.hidden = None
                run.hold(event)
            if verdict is None:
                for out in run.releasable(ended):
                    yield out
        if verdict is None and run.held:  # the stream ended with units no required stage read
            verdict = _Failure("unread")
        exchange.outcome = "flagged" if verdict is not None else "answered"
    except BaseException:
        exchange.outcome = "failed"  # the policy failed or the client left: nothing held is released
        raise
    finally:
        await events.aclose()  # cancels generation when flagged or when the client left
        if session.classifier_seconds > 0:
            guard.stats.classifier_exchanges += 1
        last = verdict if verdict is not None else getattr(session, "last", None)
        exchange.verdict = _verdict_dict(last)
        exchange.trace = session.trace
        guard.stats.released += exchange.ledger.released
        guard.stats.released_unread += exchange.ledger.unread
        guard.stats.flagged += verdict is not None
        guard._log(messages, exchange, time.perf_counter() - start, tokens)
        if trace_to is not None:
            trace_to.append(trace_of(exchange, getattr(getattr(session, "guard", None), "thresholds", {})))
    if verdict is not None:
        yield run.refusal()


def trace_of(exchange: Exchange, thresholds: dict[str, float]) -> dict[str, Any]:
    """One exchange's trace: step 0 is the prompt, step k the k-th token.

    ``steps[k]`` holds the stage-1 running score (``probe``; none with a remote upstream) and,
    from escalation on, the exchange classifier's running maximum and the ensemble score.
    """
    escalated = next((k for k, s in enumerate(exchange.trace) if s.get("classifier") is not None), None)
    keep = ("probe_threshold", "ensemble_threshold", "classifier_threshold", "probe_weight")
    return {
        "verdict": exchange.verdict,
        "outcome": exchange.outcome,
        "thresholds": {k: v for k, v in thresholds.items() if k in keep},
        "escalated_at": escalated,
        "steps": exchange.trace,
        "released": exchange.ledger.released,
        "released_unread": exchange.ledger.unread,
    }


def _verdict_dict(verdict: Any) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {
        "flagged": bool(verdict.flagged),
        "stage": verdict.stage,
        "scores": getattr(verdict, "scores", None),
        "escalated": getattr(verdict, "escalated", None),
    }
