"""The OpenAI-compatible server: routes, errors, batching under concurrency, cancellation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from alignlab.models.base import SamplingParams, TokenEvent
from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app

CHAT = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def client(tiny_backend: Any) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_backend, max_body_bytes=4096)) as c:
        yield c


def test_health_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model": "tiny"}
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"


def test_chat_matches_the_backend_and_reports_logprobs(client: TestClient, tiny_backend: Any) -> None:
    body = {"messages": CHAT, "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    answer = client.post("/v1/chat/completions", json=body).json()
    (expected,) = tiny_backend.generate([CHAT], SamplingParams(max_new_tokens=8))
    choice = answer["choices"][0]
    assert choice["message"]["content"] == expected.text
    lps = [t["logprob"] for t in choice["logprobs"]["content"]]
    assert lps == pytest.approx(expected.logprobs, abs=1e-4)
    assert all(len(t["top_logprobs"]) == 2 for t in choice["logprobs"]["content"])
    assert answer["usage"]["completion_tokens"] == len(expected.tokens)
    assert answer["usage"]["prompt_tokens"] == tiny_backend.count_tokens(CHAT)


def sse_payloads(text: str) -> list[Any]:
    lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def test_streamed_chat_equals_the_whole_answer(client: TestClient) -> None:
    body = {"messages": CHAT, "max_tokens": 8, "temperature": 0}
    whole = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    streamed = client.post(
        "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    chunks = sse_payloads(streamed.text)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == whole["finish_reason"]
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_completions_echo_scores_the_prompt(client: TestClient, tiny_backend: Any) -> None:
    body = {"prompt": "the quick brown fox", "max_tokens": 0, "echo": True, "logprobs": 1}
    lp = client.post("/v1/completions", json=body).json()["choices"][0]["logprobs"]
    _, expected, _ = tiny_backend.token_logprobs("the quick brown fox")
    assert lp["token_logprobs"][0] is None and lp["token_logprobs"][1:] == pytest.approx(
        expected[1:], abs=1e-4
    )
    assert "".join(lp["tokens"]) == "the quick brown fox"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 3}, "messages"),
        ({"messages": CHAT, "temperature": 7}, "temperature"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_malformed_requests_name_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == field


def test_oversized_and_overlong_prompts_are_refused(client: TestClient) -> None:
    big = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 10000}]})
    assert big.status_code == 413 and "4096" in big.json()["error"]["message"]
    long = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "fox " * 300}]})
    assert long.status_code == 400 and "128 tokens" in long.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_concurrent_requests_are_all_answered_and_batched(tiny_backend: Any, live_server: Any) -> None:
    prompts = [f"hello {w}" for w in ["world", "fox", "dog", "paris", "model", "tests", "brown", "lazy"]]
    expected = {
        p: g.text
        for p, g in zip(
            prompts, tiny_backend.generate(prompts, SamplingParams(max_new_tokens=6)), strict=True
        )
    }
    with (
        live_server(create_app(tiny_backend)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        results: dict[str, str] = {}

        def ask(prompt: str) -> None:
            body = {"prompt": prompt, "max_tokens": 6, "temperature": 0}
            results[prompt] = http.post("/v1/completions", json=body).json()["choices"][0]["text"]

        threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == expected


class Exploding(ScriptedBackend):
    """Fails on one prompt, answers the rest."""

    def stream_batch(self, prompts: Any, params: Any, **kwargs: Any) -> Iterator[tuple[int, TokenEvent]]:
        if any("boom" in str(p) for p in prompts):
            raise RuntimeError("kaboom")
        return super().stream_batch(prompts, params, **kwargs)


def test_a_crashing_request_does_not_take_the_server_down() -> None:
    with TestClient(create_app(Exploding("fine")), raise_server_exceptions=False) as c:
        bad = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "boom"}]})
        assert bad.status_code == 500 and bad.json()["error"]["type"] == "server_error"
        good = c.post("/v1/chat/completions", json={"messages": CHAT})
        assert good.json()["choices"][0]["message"]["content"] == "fine"


class Slow(ScriptedBackend):
    """Emits a token every 20 ms and records which rows were cancelled."""

    def __init__(self) -> None:
        super().__init__(" ".join(["word"] * 500))
        self.cancelled_rows: list[int] = []
        self.tokens_after_cancel = 0

    def stream_batch(
        self, prompts: Any, params: Any, *, hidden_states: bool = False, cancelled: Any = lambda r: False
    ) -> Iterator[tuple[int, TokenEvent]]:
        for row, event in super().stream_batch(
            prompts, params, hidden_states=hidden_states, cancelled=cancelled
        ):
            time.sleep(0.02)
            if event.finish_reason == "cancelled":
                self.cancelled_rows.append(row)
            yield row, event


def test_client_disconnect_cancels_generation(live_server: Any) -> None:
    backend = Slow()
    with live_server(create_app(backend)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        body = {"messages": CHAT, "max_tokens": 500, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            for i, _ in enumerate(response.iter_lines()):
                if i > 5:
                    break
        deadline = time.monotonic() + 10
        while not backend.cancelled_rows and time.monotonic() < deadline:
            time.sleep(0.05)
    assert backend.cancelled_rows == [0]


def test_a_request_arriving_mid_answer_joins_the_running_batch(tiny_backend: Any) -> None:
    import asyncio

    from alignlab.serve.engine import Engine

    engine = Engine(tiny_backend)
    order: list[str] = []

    async def ask(name: str, prompt: str, tokens: int, first_token: asyncio.Event | None = None) -> str:
        async for event in engine.submit(prompt, SamplingParams(max_new_tokens=tokens)):
            if event.token is not None:
                order.append(name)
                if first_token is not None:
                    first_token.set()
            if event.finish_reason is not None:
                return event.finish_reason
        raise AssertionError("no finish event")

    async def both() -> tuple[str, str]:
        started = asyncio.Event()
        long = asyncio.create_task(ask("long", "hello world", 48, started))
        await started.wait()
        short = await ask("short", "the quick brown fox", 3)
        return await long, short

    try:
        finishes = asyncio.run(both())
    finally:
        engine.close()
    assert finishes == ("length", "length")
    # A static batch would make "short" wait for all of "long"; here it runs between its tokens.
    last_short = len(order) - 1 - order[::-1].index("short")
    assert order.count("short") == 3 and "long" in order[last_short:]


def test_requests_needing_activations_wait_for_a_batch_that_computes_them(tiny_backend: Any) -> None:
    import asyncio

    from alignlab.serve.engine import Engine

    engine = Engine(tiny_backend)
    order: list[str] = []
    hidden_seen: dict[str, bool] = {}

    async def ask(
        name: str, prompt: str, tokens: int, hidden: bool, started: asyncio.Event | None = None
    ) -> None:
        params = SamplingParams(max_new_tokens=tokens)
        async for event in engine.submit(prompt, params, hidden_states=hidden):
            if event.token is not None:
                order.append(name)
                hidden_seen[name] = event.hidden is not None
                if started is not None:
                    started.set()

    async def mixed() -> None:
        started = asyncio.Event()
        plain = asyncio.create_task(ask("plain", "hello world", 24, False, started))
        await started.wait()
        names = ["a", "b", "c", "d"]
        await asyncio.gather(*(ask(n, f"the {n} fox", 4, True) for n in names), plain)

    try:
        asyncio.run(mixed())
    finally:
        engine.close()
    assert hidden_seen == {"plain": False, "a": True, "b": True, "c": True, "d": True}
    # The four probe-reading requests did not join the plain batch; they then ran as one batch.
    firsts = sorted(order.index(n) for n in "abcd")
    assert order.index("a") > len(order) - 1 - order[::-1].index("plain")
    assert firsts == list(range(firsts[0], firsts[0] + 4))
