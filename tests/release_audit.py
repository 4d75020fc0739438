"""Helpers for the release-rule tests: guard copies with forced thresholds, an ordered audit of
classifier reads and sent chunks, and chat clients over a real socket."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from alignlab.guard.classifier import ClassifierStream, ExchangeClassifier

ASSISTANT = "<|im_start|>assistant\n"
UPSTREAM_REPLY = "the quick brown fox jumps over the lazy dog and keeps on running far away"
INF = 1e30
ESCALATED = {"probe_threshold": -INF, "ensemble_threshold": INF}  # always escalated, never flagged
FLAGGED = {"probe_threshold": -INF, "ensemble_threshold": -INF}  # flagged as soon as the classifier reads


LENGTH_REFERENCE = {"positions": [1, 4, 16, 64], "values": [-0.4, 0.1, 0.3, 0.9]}
"""A steep length reference, so a served score that ignored it would differ from a checked one."""


def edited_guard(
    tiny_guard: Path, tmp_path: Path, length_reference: dict[str, Any] | None = None, **thresholds: float
) -> Path:
    """A copy of the tiny guard with some thresholds replaced (escalation and flags forced).

    With ``length_reference`` the copy's probe reports length-adjusted scores.
    """
    folder = tmp_path / "guard"
    shutil.copytree(tiny_guard, folder)
    spec = json.loads((folder / "guard.json").read_text())
    spec.update(thresholds)
    (folder / "guard.json").write_text(json.dumps(spec))
    if length_reference is not None:
        meta = json.loads((folder / "probe" / "probe.json").read_text())
        meta["length_reference"] = length_reference
        (folder / "probe" / "probe.json").write_text(json.dumps(meta))
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

        sse = app_module.sse

        async def spy_sse(chunks: Any) -> Any:
            async for line in sse(chunks):
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    for choice in chunk.get("choices", []):
                        if (
                            choice.get("finish_reason") != "content_filter"
                        ):  # the refusal is the server's text
                            audit.log.append(("sent", choice.get("delta", {}).get("content") or ""))
                yield line

        monkeypatch.setattr(app_module, "sse", spy_sse)

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
