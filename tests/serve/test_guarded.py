"""The guard in the serving path: hold-back, refusals, no token after a flag, real tiny guard."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import ScriptedSession

from alignlab.guard.cascade import Verdict
from alignlab.guard.streaming import BREAK, REFUSAL, StreamingGuard
from alignlab.models.base import ChatMessage
from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app

REPLY = "one two three secret four five six"


class Tripwire(ScriptedSession):
    """Flags a conversation that mentions 'forbidden' (input side) or a reply that says 'secret'."""

    def __init__(self, messages: Sequence[ChatMessage], inline: bool = True) -> None:
        super().__init__(messages)
        self.inline = inline  # checked on the event loop (cheap) or in a worker thread
        self.last = Verdict(False, "probe")

    def prompt(self, hidden: Any) -> Verdict | None:
        if any("forbidden" in m["content"] for m in self.messages):
            return Verdict(True, "input")
        return None

    def token(self, token_id: int | None, text: str, hidden: Any) -> Verdict | None:
        super().token(token_id, text, hidden)
        if not self.inline:
            self.classifier_seconds += 0.001
        return Verdict(True, "ensemble") if "secret" in text else None

    def cheap(self) -> bool:
        return self.inline


def make_guard(hold_back: int, inline: bool = True) -> StreamingGuard:
    return StreamingGuard(
        lambda m: Tripwire(m, inline), False, lambda m: {"flagged": False}, hold_back=hold_back
    )


def stream(client: TestClient, content: str) -> tuple[str, str | None]:
    body = {"messages": [{"role": "user", "content": content}], "stream": True}
    lines = client.post("/v1/chat/completions", json=body).text.splitlines()
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finish = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    return text, finish[-1] if finish else None


@pytest.mark.parametrize("inline", [True, False])
@pytest.mark.parametrize("hold_back", [0, 2, 5])
def test_no_token_after_an_output_flag_within_the_hold_back(hold_back: int, inline: bool) -> None:
    guard = make_guard(hold_back, inline)
    with TestClient(create_app(ScriptedBackend(REPLY), guard=guard)) as client:
        text, finish = stream(client, "tell me a story")
    words = REPLY.split()
    released = " ".join(words[: max(0, words.index("secret") - hold_back)])
    assert finish == "content_filter"
    assert text == (released + BREAK + REFUSAL if released else REFUSAL)
    assert "secret" not in text and "four" not in text
    assert guard.stats.released_unread == 0 and guard.stats.flagged == 1
    assert guard.recent[-1].verdict is not None and guard.recent[-1].verdict["stage"] == "ensemble"
    assert guard.stats.classifier_exchanges == (0 if inline else 1), "only classifier reads count"


def test_the_refusal_is_the_same_whichever_stage_fired() -> None:
    guard = make_guard(0)
    with TestClient(create_app(ScriptedBackend(REPLY), guard=guard)) as client:
        input_text, input_finish = stream(client, "something forbidden")
        whole = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "story please"}]}
        ).json()["choices"][0]
    assert input_text == REFUSAL and input_finish == "content_filter"
    assert whole["message"]["content"] == REFUSAL and whole["finish_reason"] == "content_filter"
    assert [x.verdict["stage"] for x in guard.recent if x.verdict] == ["input", "ensemble"]
    assert guard.stats.released_unread == 0 and "flagged_by_stage" not in client.get("/v1/guard/stats").json()


def test_benign_replies_pass_whole_and_raw_completions_are_refused() -> None:
    guard = make_guard(3)
    with TestClient(create_app(ScriptedBackend("all fine here"), guard=guard)) as client:
        assert stream(client, "hello") == ("all fine here", "stop")
        raw = client.post("/v1/completions", json={"prompt": "hi"})
        assert raw.status_code == 400 and "chat/completions" in raw.json()["error"]["message"]
        assert client.get("/v1/guard/stats").json()["exchanges"] == 1


def test_a_trained_tiny_guard_serves_and_checks(
    tiny_backend: Any, tiny_guard: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from alignlab.guard.load import serving_guard

    guard = serving_guard(str(tiny_guard), tiny_backend, hold_back=2, log_text=True)
    assert guard.reads_activations  # the local policy: the probe reads its activations
    with (
        caplog.at_level(logging.INFO, logger="alignlab.guard.verdicts"),
        TestClient(create_app(tiny_backend, guard=guard)) as client,
    ):
        _, finish = stream(client, "what is the capital of france")
        verdict = client.post(
            "/v1/guard/check", json={"messages": [{"role": "user", "content": "hello"}]}
        ).json()
    assert finish in ("stop", "length", "content_filter")
    assert verdict["stage"] in ("probe", "ensemble") and verdict["scores"]["probe"] is not None
    assert verdict["latency_ms"] > 0
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "alignlab.guard.verdicts"]
    assert logged and logged[0]["conversation"][0]["content"] == "what is the capital of france"
    assert guard.stats.released_unread == 0


def test_a_remote_style_policy_is_screened_by_the_classifier(tiny_backend: Any, tiny_guard: Path) -> None:
    from alignlab.guard.load import serving_guard

    guard = serving_guard(str(tiny_guard), ScriptedBackend("fine thanks"), hold_back=1, reader=tiny_backend)
    assert not guard.reads_activations
    with TestClient(create_app(ScriptedBackend("fine thanks"), guard=guard)) as client:
        text, finish = stream(client, "hello there")
    if finish == "content_filter":  # at most the hold-back window's predecessors went out before the refusal
        assert text.endswith(REFUSAL) and text[: -len(REFUSAL)] in ("", "fine" + BREAK)
    else:
        assert (text, finish) == ("fine thanks", "stop")
    assert guard.stats.exchanges == 1 and guard.stats.released_unread == 0


def test_traces_are_an_opt_in_for_allowed_clients_only(tiny_backend: Any, tiny_guard: Any) -> None:
    from fastapi.testclient import TestClient

    from alignlab.guard.load import serving_guard

    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "guard_trace": True}
    for policy, expected in (("loopback", False), ("all", True), ("off", False)):
        guard = serving_guard(str(tiny_guard), tiny_backend)
        with TestClient(
            create_app(tiny_backend, guard=guard, guard_trace=policy)
        ) as client:  # host: testclient
            reply = client.post("/v1/chat/completions", json=body).json()
            plain = client.post("/v1/chat/completions", json={**body, "guard_trace": False}).json()
        assert ("guard_trace" in reply) is expected, policy
        assert "guard_trace" not in plain
        if expected:
            trace = reply["guard_trace"][0]
            assert trace["steps"][0]["probe"] is not None and "probe_threshold" in trace["thresholds"]
