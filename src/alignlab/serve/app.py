"""An OpenAI-compatible server for any alignlab backend (FastAPI).

Routes: ``GET /healthz``, ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` (streaming or not, with log-probabilities). Errors come back as
OpenAI-style JSON: 422 names the invalid field, 400 states a context limit, 413 refuses an
oversized body, 502 reports an unreachable upstream; an unexpected failure answers 500
and leaves the server running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from alignlab.errors import AlignlabError, ConfigError, ContextLengthError
from alignlab.models.base import Backend, Prompt, SamplingParams, TokenEvent
from alignlab.serve.engine import Engine
from alignlab.serve.errors import BodyLimit, add_error_handlers
from alignlab.serve.hook import GuardHook
from alignlab.serve.schemas import (
    ChatRequest,
    CompletionRequest,
    GuardCheckRequest,
    chat_logprobs,
    legacy_logprobs,
    new_id,
    now,
)
from alignlab.serve.streams import merged, prepend, sse

log = logging.getLogger(__name__)
TRACE_POLICIES = ("off", "loopback", "all")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def create_app(
    backend: Backend,
    *,
    max_batch: int = 32,
    max_body_bytes: int = 1 << 20,
    default_max_tokens: int = 256,
    guard: GuardHook | None = None,
    guard_trace: str = "loopback",
) -> FastAPI:
    """An OpenAI-compatible app serving ``backend``; its engine starts with the app.

    Args:
        backend: the model to serve.
        guard: when given, every chat is screened (input and streamed output) and
            ``/v1/guard/check`` and ``/v1/guard/stats`` are served.
        max_batch: most requests decoded together.
        max_body_bytes: larger request bodies are refused with 413.
        default_max_tokens: completion length when a chat request sets none.
        guard_trace: who may ask for per-token guard traces (``guard_trace: true`` in a chat
            request): ``off``, ``loopback`` (clients on 127.0.0.1, such as the chat page) or ``all``.

    Raises:
        ConfigError: an unknown ``guard_trace`` setting.
    """
    if guard_trace not in TRACE_POLICIES:
        raise ConfigError(f"--guard-trace must be one of {', '.join(TRACE_POLICIES)}, not {guard_trace!r}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = Engine(backend, max_batch=max_batch)
        yield
        await asyncio.to_thread(app.state.engine.close)

    app = FastAPI(title="alignlab", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    add_error_handlers(app)
    server = _Server(app, backend, default_max_tokens, guard)
    server.trace_policy = guard_trace

    app.get("/healthz")(server.health)
    app.get("/v1/models")(server.models)
    app.post("/v1/chat/completions", response_model=None)(server.chat)
    app.post("/v1/completions", response_model=None)(server.completions)
    app.get("/", response_class=HTMLResponse)(server.page)
    if guard is not None:
        app.post("/v1/guard/check")(server.guard_check)
        app.get("/v1/guard/stats")(server.guard_stats)
    return app


class _Server:
    """The route handlers, sharing the backend and the app's engine."""

    def __init__(
        self, app: FastAPI, backend: Backend, default_max_tokens: int, guard: GuardHook | None
    ) -> None:
        self.app = app
        self.backend = backend
        self.default_max_tokens = default_max_tokens
        self.guard = guard
        self.trace_policy = "loopback"

    def _events(
        self, prompt: Prompt, params: SamplingParams, stream: bool, trace: list[dict[str, Any]] | None = None
    ) -> AsyncIterator[TokenEvent]:
        """A choice's event stream, through the guard when there is one."""
        if self.guard is None or isinstance(prompt, str):
            return self.engine.submit(prompt, params)
        raw = self.engine.submit(prompt, params, hidden_states=self.guard.reads_activations)
        return self.guard.screen(raw, prompt, stream=stream, trace_to=trace)

    def _traces(self, body: ChatRequest, request: Request) -> list[list[dict[str, Any]]] | None:
        """One trace sink per choice where the request asks for traces and this client may have them.

        A client the ``--guard-trace`` setting does not cover gets its reply without a trace.
        """
        host = request.client.host if request.client else ""
        allowed = self.trace_policy == "all" or (self.trace_policy == "loopback" and host in LOOPBACK)
        if not body.guard_trace or self.guard is None or not allowed:
            return None
        return [[] for _ in range(body.n)]

    async def page(self) -> str:
        from importlib import resources

        return (resources.files("alignlab.serve") / "chat.html").read_text(encoding="utf-8")

    async def guard_check(self, body: GuardCheckRequest) -> dict[str, Any]:
        assert self.guard is not None
        messages = [m.as_chat() for m in body.messages]
        return await asyncio.to_thread(self.guard.check, messages)

    async def guard_stats(self) -> dict[str, Any]:
        assert self.guard is not None
        return self.guard.stats_dict()

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    async def health(self) -> dict[str, str]:
        return {"status": "ok", "model": self.backend.name}

    async def models(self) -> dict[str, Any]:
        card = {"id": self.backend.name, "object": "model", "created": 0, "owned_by": "alignlab"}
        return {"object": "list", "data": [card]}

    def _check(self, prompt: Prompt) -> int | None:
        """The prompt's token count, where the backend can count; raises when it cannot fit."""
        count = getattr(self.backend, "count_tokens", None)
        if count is None:
            return None
        tokens = int(count(prompt))
        limit = self.backend.context_length
        if limit is not None and tokens >= limit:
            raise ContextLengthError(tokens, limit)
        return tokens

    async def _run(
        self, prompt: Prompt, params: SamplingParams, trace: list[dict[str, Any]] | None = None
    ) -> list[TokenEvent]:
        return [e async for e in self._events(prompt, params, stream=False, trace=trace)]

    async def chat(self, body: ChatRequest, request: Request) -> Any:
        prompt: Prompt = [m.as_chat() for m in body.messages]
        prompt_tokens = await asyncio.to_thread(self._check, prompt)
        max_tokens = body.max_completion_tokens or body.max_tokens or self.default_max_tokens
        top = body.top_logprobs or 0
        params = [body.params(max_tokens, top, i) for i in range(body.n)]
        ident, created = new_id("chatcmpl"), now()
        traces = self._traces(body, request)
        sinks: list[list[dict[str, Any]] | None] = (
            list(traces) if traces is not None else [None] * len(params)
        )
        if body.stream:
            streams = merged([self._events(prompt, p, True, t) for p, t in zip(params, sinks, strict=True)])
            # The first event is awaited before the response starts, so an upstream that is down
            # or too slow answers 502 with a JSON error instead of a stream that dies at once.
            first = await anext(streams, None)
            chunks = self._chat_chunks(
                ident, created, first, streams, len(params), body, prompt_tokens, traces
            )
            return StreamingResponse(sse(chunks), media_type="text/event-stream")
        results = await asyncio.gather(*(self._run(prompt, p, t) for p, t in zip(params, sinks, strict=True)))
        choices = []
        for i, events in enumerate(results):
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": "".join(e.text for e in events)},
                "finish_reason": _finish(events),
                "logprobs": chat_logprobs(events) if body.logprobs else None,
            }
            choices.append(choice)
        usage = _usage(prompt_tokens, sum(_count(events) for events in results))
        reply = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": self.backend.name,
            "choices": choices,
            "usage": usage,
        }
        if traces is not None:
            reply["guard_trace"] = [t[0] if t else None for t in traces]
        return reply

    async def _chat_chunks(
        self,
        ident: str,
        created: int,
        first: tuple[int, TokenEvent] | None,
        events: AsyncGenerator[tuple[int, TokenEvent], None],
        choices: int,
        body: ChatRequest,
        prompt_tokens: int | None,
        traces: list[list[dict[str, Any]]] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        head = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.backend.name,
        }
        for i in range(choices):
            yield {
                **head,
                "choices": [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        produced = 0
        async for i, event in prepend(first, events):
            produced += event.token is not None
            delta = {"content": event.text} if event.text or event.finish_reason is None else {}
            logprobs = chat_logprobs([event]) if body.logprobs and event.token is not None else None
            finish = _public_finish(event.finish_reason)
            yield {
                **head,
                "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            }
        if traces is not None:  # after every choice ended: an alignlab extension chunk
            yield {
                **head,
                "object": "alignlab.guard_trace",
                "choices": [],
                "guard_trace": [t[0] if t else None for t in traces],
            }
        if body.stream_options is not None and body.stream_options.include_usage:
            yield {**head, "choices": [], "usage": _usage(prompt_tokens, produced)}

    async def completions(self, body: CompletionRequest) -> Any:
        if self.guard is not None:
            raise AlignlabError(
                "raw completions are not screened; with the guard on, use /v1/chat/completions"
            )
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        counts = [await asyncio.to_thread(self._check, p) for p in prompts]
        top = body.logprobs or 0
        jobs = [(p, body.params(body.max_tokens, top, i)) for p in prompts for i in range(body.n)]
        ident, created = new_id("cmpl"), now()
        if body.stream:
            if body.echo:
                raise AlignlabError("echo is not supported with stream")
            return StreamingResponse(
                sse(self._completion_chunks(ident, created, jobs, body)), media_type="text/event-stream"
            )
        results = await asyncio.gather(*(self._complete(p, sp, body) for p, sp in jobs))
        choices = [{"index": i, **r} for i, r in enumerate(results)]
        usage = _usage(
            sum(c or 0 for c in counts) if None not in counts else None,
            sum(len((r["logprobs"] or {}).get("tokens", [])) for r in results),
        )
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": self.backend.name,
            "choices": choices,
            "usage": usage,
        }

    async def _complete(self, prompt: str, params: SamplingParams, body: CompletionRequest) -> dict[str, Any]:
        events = await self._run(prompt, params) if params.max_new_tokens > 0 else []
        text = "".join(e.text for e in events)
        tokens = [e.token or "" for e in events if e.token is not None]
        lps: list[float | None] = [e.logprob for e in events if e.token is not None]
        tops: list[dict[str, float] | None] = [dict(e.top_logprobs) for e in events if e.token is not None]
        if body.echo:
            echo_tokens, echo_lps, echo_tops = await asyncio.to_thread(self._echo, prompt, body.logprobs or 0)
            text, tokens, lps, tops = prompt + text, echo_tokens + tokens, echo_lps + lps, echo_tops + tops
        logprobs = legacy_logprobs(tokens, lps, tops, 0) if body.logprobs is not None else None
        finish = _finish(events) if events else "length"
        return {"text": text, "logprobs": logprobs, "finish_reason": finish}

    def _echo(
        self, prompt: str, top: int
    ) -> tuple[list[str], list[float | None], list[dict[str, float] | None]]:
        scorer = getattr(self.backend, "token_logprobs", None)
        if scorer is None:
            raise AlignlabError("this backend cannot echo prompt log-probabilities")
        ids, lps, tops = scorer(prompt, top=top)
        tokens = [self.backend.token_text(i) for i in ids]  # type: ignore[attr-defined]
        return tokens, lps, tops

    async def _completion_chunks(
        self, ident: str, created: int, jobs: list[tuple[str, SamplingParams]], body: CompletionRequest
    ) -> AsyncIterator[dict[str, Any]]:
        head = {"id": ident, "object": "text_completion", "created": created, "model": self.backend.name}
        async for i, event in merged([self.engine.submit(p, sp) for p, sp in jobs]):
            logprobs = None
            if body.logprobs is not None and event.token is not None:
                logprobs = legacy_logprobs([event.token], [event.logprob], [dict(event.top_logprobs)], 0)
            finish = _public_finish(event.finish_reason)
            yield {
                **head,
                "choices": [{"index": i, "text": event.text, "logprobs": logprobs, "finish_reason": finish}],
            }


def _public_finish(reason: str | None) -> str | None:
    return None if reason is None else ("stop" if reason == "cancelled" else reason)


def _finish(events: list[TokenEvent]) -> str:
    return _public_finish(events[-1].finish_reason) or "length" if events else "length"


def _count(events: list[TokenEvent]) -> int:
    return sum(e.token is not None for e in events)


def _usage(prompt_tokens: int | None, completion_tokens: int) -> dict[str, int]:
    prompt = prompt_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
