"""OpenAI-compatible request bodies (validated) and response pieces."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from alignlab.models.base import ChatMessage, SamplingParams, TokenEvent


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class MessageIn(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = ""

    def as_chat(self) -> ChatMessage:
        content = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content}


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Sampling(BaseModel):
    model: str | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def params(self, max_tokens: int, top_logprobs: int, choice: int) -> SamplingParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        seed = None if self.seed is None else self.seed + choice
        return SamplingParams(max_tokens, self.temperature, self.top_p, stop, seed, top_logprobs)


class ChatRequest(_Sampling):
    messages: list[MessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    guard_trace: bool = False
    """alignlab extension: return each choice's per-token guard trace (where the server allows it)."""


class GuardCheckRequest(BaseModel):
    messages: list[MessageIn] = Field(min_length=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8", "replace"))}


def chat_logprobs(events: list[TokenEvent]) -> dict[str, Any]:
    """The chat ``logprobs.content`` list for some token events."""
    content = []
    for e in events:
        if e.token is None:
            continue
        item = _entry(e.token, e.logprob if e.logprob is not None else 0.0)
        item["top_logprobs"] = [_entry(t, lp) for t, lp in e.top_logprobs]
        content.append(item)
    return {"content": content}


def legacy_logprobs(
    tokens: list[str], lps: list[float | None], tops: list[dict[str, float] | None], offset: int
) -> dict[str, Any]:
    """The ``/v1/completions`` logprobs object (tokens, token_logprobs, top_logprobs, text_offset)."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
