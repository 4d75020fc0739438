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

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import LiveServer

from alignlab.guard.classifier import ClassifierStream, ExchangeClassifier
from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app

ASSISTANT = "<|im_start|>assistant\n"
UPSTREAM_REPLY = "the quick brown fox jumps over the lazy dog and keeps on running far away"
INF = 1e30


def edited_guard(tiny_guard: Path, tmp_path: Path, **thresholds: float) -> Path:
    """A copy of the tiny guard with some thresholds replaced (escalation and flags forced)."""
    folder = tmp_path / "guard"
    shutil.copytree(tiny_guard, folder)
    spec = json.loads((folder / "guard.json").read_text())
    spec.update(thresholds)
    (folder / "guard.json").write_text(json.dumps(spec))
    return folder


class Audit:
    """One ordered log of classifier reads (the response text read so far) and chunks sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tokenizer: Any) -> None:
        self.log: list[tuple[str, str]] = []
        audit = self

        def response_text(ids: Sequence[int]) -> str:
            text = tokenizer.decode(list(ids))
            return text.rsplit(ASSISTANT, 1)[1] if ASSISTANT in text else ""

        feed = ClassifierStream.feed

        def spy_feed(stream: ClassifierStream, ids: Sequence[int]) -> float:
            fed = getattr(stream, "_audit_ids", [])
            stream._audit_ids = fed + list(ids)  # type: ignore[attr-defined]
            out = feed(stream, ids)
            audit.log.append(("read", response_text(stream._audit_ids)))  # type: ignore[attr-defined]
            return out

        scores = ExchangeClassifier.token_scores

        def spy_scores(model: ExchangeClassifier, rows: Sequence[list[int]], batch: int = 16) -> Any:
            out = scores(model, rows, batch)
            for row in rows:
                audit.log.append(("read", response_text(row)))
            return out

        monkeypatch.setattr(ClassifierStream, "feed", spy_feed)
        monkeypatch.setattr(ExchangeClassifier, "token_scores", spy_scores)

        import alignlab.serve.app as app_module

        sse = app_module._sse

        async def spy_sse(chunks: Any) -> Any:
            async for line in sse(chunks):
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    for choice in chunk.get("choices", []):
                        audit.log.append(("sent", choice.get("delta", {}).get("content") or ""))
                yield line

        monkeypatch.setattr(app_module, "_sse", spy_sse)

    def unread_sends(self) -> list[str]:
        """Response text sent before the classifier had read it (empty when the rule held)."""
        read, sent, bad = None, "", []
        for kind, text in self.log:
            if kind == "read":
                read = text if read is None or len(text) >= len(read) else read
            elif text:
                sent += text
                if read is None or not read.startswith(sent):
                    bad.append(sent)
        return bad


def stream_chat(url: str, content: str, max_tokens: int = 24) -> tuple[list[str], str | None]:
    body = {
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    deltas: list[str] = []
    finish = None
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                if choice["delta"].get("content"):
                    deltas.append(choice["delta"]["content"])
                finish = choice.get("finish_reason") or finish
    return deltas, finish


def chat(url: str, content: str, max_tokens: int = 24) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


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


ESCALATED = {"probe_threshold": -INF, "ensemble_threshold": INF}  # always escalated, never flagged
FLAGGED = {"probe_threshold": -INF, "ensemble_threshold": -INF}  # flagged as soon as the classifier reads


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
