"""The ``openai`` backend: any OpenAI-compatible HTTP endpoint, over httpx.

Works with vLLM, llama.cpp's server, Ollama, alignlab's own server and the OpenAI API.
Chats go to ``/chat/completions``, raw text to ``/completions``; streaming uses SSE.
Scoring a continuation uses ``/completions`` with ``echo`` and ``max_tokens=0`` (vLLM and
alignlab's server support it). Hidden states never cross HTTP: asking raises
:class:`~alignlab.errors.CapabilityError`.
"""

from __future__ import annotations

import json
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from alignlab.errors import CapabilityError, EndpointError
from alignlab.models.base import Continuation, Generation, Prompt, SamplingParams, TokenEvent, collect


class OpenAIBackend:
    """A model behind an OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name; ``None`` takes the first one ``/models`` lists.
        api_key: sent as a bearer token (defaults to ``$OPENAI_API_KEY`` when set).
        timeout: seconds per request.
        max_concurrency: requests in flight at once for batched calls.
        transport: an httpx transport (tests pass ``httpx.ASGITransport`` or ``MockTransport``).
    """

    context_length: int | None = None

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_concurrency: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.max_concurrency = max_concurrency
        self._model = model

    @property
    def name(self) -> str:
        if self._model is None:
            listed = self._request("GET", "/models").get("data") or []
            if not listed:
                raise EndpointError(self.base_url, "/models lists no model; pass one as openai:URL#MODEL")
            self._model = str(listed[0]["id"])
        return self._model

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise EndpointError(f"{self.base_url}{path}", f"unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise EndpointError(f"{self.base_url}{path}", _error_text(response), response.status_code)
        result: dict[str, Any] = response.json()
        return result

    def _body(self, prompt: Prompt, params: SamplingParams, stream: bool) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if isinstance(prompt, str):
            body.update(prompt=prompt, logprobs=max(params.top_logprobs, 0))
            return "/completions", body
        body.update(messages=list(prompt), logprobs=True)
        if params.top_logprobs:
            body["top_logprobs"] = params.top_logprobs
        return "/chat/completions", body

    # -- generation --------------------------------------------------------------------

    def stream(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> Iterator[TokenEvent]:
        """Stream one continuation over SSE; closing the iterator closes the connection."""
        if hidden_states:
            raise CapabilityError("hidden states are not available over HTTP; use an hf backend")
        path, body = self._body(prompt, params, stream=True)
        url = f"{self.base_url}{path}"
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise EndpointError(url, _error_text(response), response.status_code)
                yield from _sse_events(response.iter_lines(), chat=path == "/chat/completions")
        except httpx.HTTPError as exc:
            raise EndpointError(url, f"unreachable: {exc}") from exc

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = lambda row: False,
    ) -> Iterator[tuple[int, TokenEvent]]:
        """Stream every row concurrently (one connection each), merged in arrival order."""
        merged: queue.Queue[tuple[int, TokenEvent | BaseException]] = queue.Queue()

        def run(row: int) -> None:
            try:
                for event in self.stream(prompts[row], params[row], hidden_states=hidden_states):
                    merged.put((row, event))
                    if event.finish_reason is None and cancelled(row):
                        merged.put((row, TokenEvent("", finish_reason="cancelled")))
                        return
            except BaseException as exc:  # handed to the consumer thread, re-raised there
                merged.put((row, exc))

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            for row in range(len(prompts)):
                pool.submit(run, row)
            yield from _drain(merged, len(prompts))

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """Generate one continuation per prompt, up to ``max_concurrency`` requests at a time."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda p: self._generate_one(p, params), prompts))

    def _generate_one(self, prompt: Prompt, params: SamplingParams) -> Generation:
        path, body = self._body(prompt, params, stream=False)
        data = self._request("POST", path, body)
        choice = data["choices"][0]
        chat = path == "/chat/completions"
        events = [(0, e) for e in _choice_tokens(choice, chat)]
        events.append((0, TokenEvent("", finish_reason=_finish(choice.get("finish_reason")))))
        gen = collect(events, [int((data.get("usage") or {}).get("prompt_tokens", 0))])[0]
        message = choice.get("message") or {}
        gen.text = (message.get("content") or "") if chat else choice.get("text", "")
        return gen

    # -- scoring -----------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[tuple[Prompt, str]]) -> list[Continuation]:
        """Score continuations with ``/completions`` ``echo=True, max_tokens=0``; raw-text prompts only."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda r: self._score(*r), requests))

    def _score(self, prompt: Prompt, continuation: str) -> Continuation:
        if not isinstance(prompt, str):
            raise CapabilityError("scoring over HTTP needs a raw-text prompt (apply the chat template first)")
        body = {
            "model": self.name,
            "prompt": prompt + continuation,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
        }
        logprobs = self._request("POST", "/completions", body)["choices"][0]["logprobs"]
        picked = [i for i, off in enumerate(logprobs["text_offset"]) if off >= len(prompt)]
        token_lps = [float(logprobs["token_logprobs"][i]) for i in picked]
        tops = logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"])
        greedy = all(
            tops[i] is None or max(tops[i].values()) <= logprobs["token_logprobs"][i] + 1e-6 for i in picked
        )
        return Continuation(sum(token_lps), token_lps, greedy)

    def hidden_states(self, prompts: Sequence[Prompt]) -> list[npt.NDArray[np.float32]]:
        raise CapabilityError("hidden states are not available over HTTP; use an hf backend")

    def close(self) -> None:
        self._http.close()


def _drain(
    merged: queue.Queue[tuple[int, TokenEvent | BaseException]], rows: int
) -> Iterator[tuple[int, TokenEvent]]:
    open_rows = rows
    while open_rows:
        row, item = merged.get()
        if isinstance(item, BaseException):
            raise item
        if item.finish_reason is not None:
            open_rows -= 1
        yield row, item


def _error_text(response: httpx.Response) -> str:
    try:
        err = response.json().get("error", response.json())
        return str(err.get("message", err) if isinstance(err, dict) else err)
    except (json.JSONDecodeError, AttributeError):
        return response.text[:500]


def _finish(reason: Any) -> Any:
    return reason if reason in ("stop", "length") else "stop"


def _choice_tokens(choice: dict[str, Any], chat: bool) -> list[TokenEvent]:
    """Token events from a choice's ``logprobs`` (chat or legacy format); empty where none came."""
    logprobs = choice.get("logprobs") or {}
    if chat:
        return [
            TokenEvent(
                t["token"],
                t["token"],
                None,
                t["logprob"],
                top_logprobs=[(x["token"], x["logprob"]) for x in t.get("top_logprobs") or []],
            )
            for t in logprobs.get("content") or []
        ]
    tokens, lps = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    return [TokenEvent(t, t, None, lp) for t, lp in zip(tokens, lps, strict=False)]


def _sse_events(lines: Iterator[str], *, chat: bool) -> Iterator[TokenEvent]:
    """Token events from an SSE stream of completion chunks, ending with a finish event."""
    finish: Any = "stop"
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        chunk = json.loads(payload)
        if "error" in chunk:
            raise EndpointError("stream", str(chunk["error"].get("message", chunk["error"])))
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") or "" if chat else choice.get("text") or ""
            tokens = _choice_tokens(choice, chat)
            if tokens:
                for i, token in enumerate(tokens):  # the chunk's text is authoritative
                    token.text = text if i == 0 else ""
                yield from tokens
            elif text:
                yield TokenEvent(text, text)
            if choice.get("finish_reason"):
                finish = _finish(choice["finish_reason"])
    yield TokenEvent("", finish_reason=finish)
