"""Over a real socket on 127.0.0.1: the official openai client and alignlab's own openai backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from alignlab.errors import EndpointError
from alignlab.models.base import SamplingParams
from alignlab.models.openai import OpenAIBackend
from alignlab.serve.app import create_app

CHAT = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def server(tiny_backend: Any) -> Iterator[Any]:
    from support import LiveServer

    with LiveServer(create_app(tiny_backend)) as live:
        yield live


def test_openai_client_streams_and_completes(server: Any, tiny_backend: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    (expected,) = tiny_backend.generate([CHAT], SamplingParams(max_new_tokens=8))
    whole = client.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=8, temperature=0, logprobs=True
    )
    assert whole.choices[0].message.content == expected.text
    assert whole.choices[0].logprobs is not None
    assert [t.logprob for t in whole.choices[0].logprobs.content or []] == pytest.approx(
        expected.logprobs, abs=1e-4
    )
    stream = client.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected.text
    assert client.models.list().data[0].id == "tiny"


def test_openai_client_sees_errors_as_exceptions(server: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "fox " * 300}])


def test_our_openai_backend_round_trips(server: Any, tiny_backend: Any) -> None:
    remote = OpenAIBackend(f"{server.url}/v1")
    assert remote.name == "tiny"
    prompts: list[Any] = [CHAT, "the quick brown"]
    params = SamplingParams(max_new_tokens=8)
    local = tiny_backend.generate(prompts, params)
    for there, here in zip(remote.generate(prompts, params), local, strict=True):
        assert there.text == here.text and there.finish_reason == here.finish_reason
        np.testing.assert_allclose(there.logprobs, here.logprobs, atol=1e-4)
    streamed = list(remote.stream(CHAT, params))
    assert (
        "".join(e.text for e in streamed) == local[0].text
        and streamed[-1].finish_reason == local[0].finish_reason
    )
    rows = list(remote.stream_batch(prompts, [params, params]))
    for row, gen in enumerate(local):
        assert "".join(e.text for r, e in rows if r == row) == gen.text


def test_our_openai_backend_scores_continuations(server: Any, tiny_backend: Any) -> None:
    remote = OpenAIBackend(f"{server.url}/v1", "tiny")
    requests = [("the quick brown", " fox jumps"), ("hello", " world")]
    for there, here in zip(remote.loglikelihood(requests), tiny_backend.loglikelihood(requests), strict=True):
        assert there.logprob == pytest.approx(here.logprob, abs=1e-3)
        assert there.is_greedy == here.is_greedy


def test_server_errors_reach_our_backend_as_endpoint_errors(server: Any) -> None:
    remote = OpenAIBackend(f"{server.url}/v1", "tiny")
    with pytest.raises(EndpointError) as info:
        remote.generate(["fox " * 300], SamplingParams(max_new_tokens=2))
    assert info.value.status == 400 and "128 tokens" in str(info.value)
