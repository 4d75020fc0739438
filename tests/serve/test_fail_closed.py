"""The guarded server fails closed, on the real sessions and a real socket.

A stage that raises refuses the exchange; a policy that fails mid-stream ends the stream with
an error event and releases nothing unread; an upstream that is down or too slow answers 502
with a JSON error; a client that leaves cancels its generation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from release_audit import ESCALATED, INF, Audit, chat, edited_guard, stream_chat
from support import LiveServer

from alignlab.guard.classifier import ClassifierStream
from alignlab.guard.streaming import REFUSAL, Ledger
from alignlab.models.base import TokenEvent
from alignlab.models.openai import OpenAIBackend
from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app


def test_the_ledger_counts_a_unit_released_unread() -> None:
    ledger = Ledger()
    ledger.record(0, {"probe": 3, "classifier": 3}, ("probe", "classifier"))
    ledger.record(3, {"probe": 4, "classifier": 3}, ("probe", "classifier"))  # the classifier had read 0..2
    ledger.record(1, {"probe": 4}, ("probe",))
    assert ledger.released == 3 and ledger.unread == 1
    assert ledger.entries[1] == (("probe",), ("classifier", "probe"))


@pytest.fixture
def escalated(tiny_guard: Path, tmp_path: Path) -> Path:
    return edited_guard(tiny_guard, tmp_path, **ESCALATED)


def test_a_classifier_that_raises_refuses(
    tiny_backend: Any, escalated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignlab.guard.load import serving_guard

    def broken(self: ClassifierStream, ids: Sequence[int]) -> float:
        raise RuntimeError("classifier out of memory")

    monkeypatch.setattr(ClassifierStream, "feed", broken)
    guard = serving_guard(str(escalated), tiny_backend, hold_back=1)
    with LiveServer(create_app(tiny_backend, guard=guard)) as live:
        deltas, finish = stream_chat(live.url, "what is the capital of france")
        whole = chat(live.url, "what is the capital of france")
        stats = httpx.get(f"{live.url}/v1/guard/stats").json()
    assert deltas == [REFUSAL] and finish == "content_filter"
    assert whole["message"]["content"] == REFUSAL
    assert stats["guard_errors"] == 2 and stats["released"] == 0


class DiesMidStream(ScriptedBackend):
    """An upstream-like policy that fails after a few tokens."""

    def stream_batch(
        self, prompts: Any, params: Any, *, hidden_states: bool = False, cancelled: Any = lambda r: False
    ) -> Iterator[tuple[int, TokenEvent]]:
        for n, (row, event) in enumerate(super().stream_batch(prompts, params, cancelled=cancelled)):
            if n == 6:
                raise RuntimeError("the policy crashed")
            yield row, event


def test_a_policy_failing_mid_stream_ends_with_an_error_and_nothing_unread(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignlab.guard.load import serving_guard

    folder = edited_guard(tiny_guard, tmp_path, classifier_threshold=INF)
    upstream = DiesMidStream("one two three four five six seven eight nine ten")
    guard = serving_guard(str(folder), upstream, hold_back=2, reader=tiny_backend)
    audit = Audit(monkeypatch, tiny_backend.tokenizer)
    body = {"messages": [{"role": "user", "content": "count"}], "stream": True}
    with LiveServer(create_app(upstream, guard=guard)) as live:
        lines = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60).text.splitlines()
        stats = httpx.get(f"{live.url}/v1/guard/stats").json()
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert "error" in chunks[-1] and [x for x in lines if x][-1] == "data: [DONE]"
    sent = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))
    assert "six" not in sent and audit.unread_sends() == []
    assert stats["released_unread"] == 0


def test_an_upstream_that_is_down_or_slow_answers_502(
    tiny_backend: Any, tiny_guard: Path, live_server: Any, tmp_path: Path
) -> None:
    from alignlab.guard.load import serving_guard

    class Slow(ScriptedBackend):
        def stream_batch(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, TokenEvent]]:
            time.sleep(2)
            yield from super().stream_batch(*args, **kwargs)

    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused, and no server takes it
    port = closed.getsockname()[1]
    with closed, live_server(create_app(Slow("late"))) as slow:
        upstreams = {
            "down": OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=2),
            "slow": OpenAIBackend(f"{slow.url}/v1", "m", timeout=0.5),
        }
        for name, upstream in upstreams.items():
            folder = edited_guard(
                tiny_guard, tmp_path / name, classifier_threshold=INF
            )  # never refuses first
            guard = serving_guard(str(folder), upstream, reader=tiny_backend)
            with live_server(create_app(upstream, guard=guard)) as live:
                for stream in (False, True):
                    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
                    response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30)
                    assert response.status_code == 502, (name, stream)
                    assert response.json()["error"]["type"] == "upstream_error"


def test_a_client_leaving_cancels_its_guarded_generation(tiny_backend: Any, escalated: Path) -> None:
    from alignlab.guard.load import serving_guard

    guard = serving_guard(str(escalated), tiny_backend, hold_back=1)
    app = create_app(tiny_backend, guard=guard)
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True, "max_tokens": 100}
    with LiveServer(app) as live:
        with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=30) as response:
            for i, _ in enumerate(response.iter_lines()):
                if i > 4:
                    break
        engine = app.state.engine
        deadline = time.monotonic() + 10
        while (engine.active or not engine.finished) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.active == 0 and engine.finished == {"cancelled": 1}


def test_a_served_window_unlike_the_guards_is_refused(tiny_backend: Any, tiny_guard: Path) -> None:
    from alignlab.errors import ConfigError
    from alignlab.guard.load import serving_guard

    with pytest.raises(ConfigError, match="512-token prompt window"):
        serving_guard(str(tiny_guard), tiny_backend, prompt_window=96)
    assert serving_guard(str(tiny_guard), tiny_backend, prompt_window=512).reads_activations


def test_hold_back_below_zero_is_a_config_error() -> None:
    from alignlab.errors import ConfigError
    from alignlab.guard.streaming import StreamingGuard

    with pytest.raises(ConfigError, match="hold-back"):
        StreamingGuard(lambda m: None, False, lambda m: {}, hold_back=-1)  # type: ignore[arg-type,return-value]
