"""The release rule on the real sessions, through a real server over a socket.

A token may leave the server only once every stage the cascade's state requires has read
it. These tests drive the real :class:`ProbeSession` (local policy: the probe reads every
token, the exchange classifier every token once escalated) and :class:`ClassifierSession`
(remote upstream: the classifier reads every token) on a tiny random-init policy and a tiny
trained guard, with escalation forced through the guard's thresholds. An audit independent
of the server's own ledger records, in one ordered log, every classifier read and every
chunk the server sends; each sent token must have been read before it was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from release_audit import (
    ESCALATED,
    FLAGGED,
    INF,
    LENGTH_REFERENCE,
    UPSTREAM_REPLY,
    Audit,
    chat,
    edited_guard,
    stream_chat,
)
from support import LiveServer

from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app


@pytest.fixture
def local_server(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    from alignlab.guard.load import serving_guard

    folder = edited_guard(tiny_guard, tmp_path, **request.param)
    guard = serving_guard(str(folder), tiny_backend, hold_back=2)
    with LiveServer(create_app(tiny_backend, guard=guard)) as live:
        live.guard = guard
        yield live


@pytest.mark.parametrize("local_server", [ESCALATED], indirect=True)
def test_escalated_local_stream_releases_only_classifier_read_tokens(
    local_server: Any, tiny_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = Audit(monkeypatch, tiny_backend.tokenizer)
    deltas, finish = stream_chat(local_server.url, "what is the capital of france")
    assert finish in ("stop", "length") and deltas, "the never-flagging guard answers"
    assert audit.unread_sends() == [], "tokens reached the client before the classifier read them"
    stats = httpx.get(f"{local_server.url}/v1/guard/stats").json()
    assert stats["released_unread"] == 0 and stats["released"] >= len(deltas)


def test_remote_upstream_stream_releases_only_classifier_read_tokens(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignlab.guard.load import serving_guard

    folder = edited_guard(tiny_guard, tmp_path, classifier_threshold=INF)
    upstream = ScriptedBackend(UPSTREAM_REPLY)
    guard = serving_guard(str(folder), upstream, hold_back=1, reader=tiny_backend)
    audit = Audit(monkeypatch, tiny_backend.tokenizer)
    with LiveServer(create_app(upstream, guard=guard)) as live:
        deltas, finish = stream_chat(live.url, "hello there", max_tokens=64)
        stats = httpx.get(f"{live.url}/v1/guard/stats").json()
    assert "".join(deltas) == UPSTREAM_REPLY and finish == "stop"
    assert audit.unread_sends() == [], "tokens reached the client before the classifier read them"
    assert stats["released_unread"] == 0 and stats["released"] >= len(UPSTREAM_REPLY.split())


@pytest.mark.parametrize("local_server", [FLAGGED], indirect=True)
def test_a_flagged_reply_is_the_refusal_alone(local_server: Any) -> None:
    from alignlab.guard.streaming import REFUSAL

    whole = chat(local_server.url, "what is the capital of france")
    other = chat(local_server.url, "def add(a, b): return a + b")
    assert whole["message"]["content"] == REFUSAL == other["message"]["content"]
    assert whole["finish_reason"] == "content_filter"
    deltas, finish = stream_chat(local_server.url, "hello world")
    assert deltas == [REFUSAL] and finish == "content_filter"


def rising_threshold(trace: list[dict[str, float | None]]) -> tuple[float, int] | None:
    """An ensemble threshold the running score first crosses at a later token (index of that token)."""
    scores = [t["ensemble"] for t in trace]
    for j in range(6, len(scores)):  # late enough that tokens beyond the hold-back were released first
        a, b = scores[j - 1], scores[j]
        if a is not None and b is not None and b > a:
            return (a + b) / 2, j
    return None


def test_a_flag_mid_stream_ends_with_the_refusal_as_its_own_delta(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignlab.guard.load import serving_guard
    from alignlab.guard.streaming import BREAK, REFUSAL

    prompts = ["what is the capital of france", "hello world, this is a tiny model", "def add(a, b):"]
    probe = serving_guard(str(edited_guard(tiny_guard, tmp_path, **ESCALATED)), tiny_backend)
    found, prompt, answer = None, "", [""]
    with LiveServer(create_app(tiny_backend, guard=probe)) as live:
        for prompt in prompts:
            answer, _ = stream_chat(live.url, prompt, max_tokens=40)
            if found := rising_threshold(probe.recent[-1].trace):
                break
    assert found, "the tiny guard's ensemble never rose mid-answer on any prompt"
    folder = edited_guard(tiny_guard, tmp_path / "flag", probe_threshold=-INF, ensemble_threshold=found[0])
    guard = serving_guard(str(folder), tiny_backend, hold_back=2)
    audit = Audit(monkeypatch, tiny_backend.tokenizer)
    with LiveServer(create_app(tiny_backend, guard=guard)) as live:
        deltas, finish = stream_chat(live.url, prompt, max_tokens=40)
        whole = chat(live.url, prompt, max_tokens=40)
        stats = httpx.get(f"{live.url}/v1/guard/stats").json()
    assert finish == "content_filter" and deltas[-1] == BREAK + REFUSAL
    released = "".join(deltas[:-1])
    assert "".join(answer).startswith(released), "what left is a prefix of the unflagged answer"
    assert audit.unread_sends() == []
    assert whole["message"]["content"] == REFUSAL and whole["finish_reason"] == "content_filter"
    assert stats["released_unread"] == 0 and stats["flagged"] == 2


@pytest.mark.parametrize(
    "local_server",
    [ESCALATED, {**ESCALATED, "length_reference": LENGTH_REFERENCE}],
    indirect=True,
    ids=["raw", "length-adjusted"],
)
def test_check_gives_the_served_verdict(local_server: Any, tiny_backend: Any) -> None:
    conversation = [{"role": "user", "content": "what is the capital of france"}]
    # 12 tokens: the random model's answer is still its tokenizer's own split of the text there
    # (check reads the reply as text; serving reads the generated ids)
    deltas, _ = stream_chat(local_server.url, conversation[0]["content"], max_tokens=12)
    served = local_server.guard.recent[-1].verdict
    answer = "".join(deltas)
    body = {"messages": [*conversation, {"role": "assistant", "content": answer}]}
    checked = httpx.post(f"{local_server.url}/v1/guard/check", json=body, timeout=60).json()
    assert answer and checked["flagged"] == served["flagged"] and checked["stage"] == served["stage"]
    for stage in ("probe", "classifier", "ensemble"):
        assert checked["scores"][stage] == pytest.approx(served["scores"][stage], abs=1e-3), stage
