"""The one prompt window and scoring start every guard path shares.

A guard reads a conversation the same way wherever it meets it — building data, training,
calibration, evaluation, ``guard check``, ``/v1/guard/check`` and serving:

- the policy reads the whole conversation as served (cut from the left only where it would
  not fit the model's context);
- every stage *scores* only the last ``prompt_tokens`` tokens of the prompt, then the
  response: the probe's running score starts there and the exchange classifier reads the
  prompt from there;
- with ``score_from="client"`` scores start at the first token the client sent: the chat
  template's fixed preamble (a default system prompt, the first role header), the same for
  every request, is never scored, so it cannot set a floor under the max-over-tokens score.
  ``"template"`` scores the template's preamble too (guards trained before this rule).

The window is a recipe field, recorded in the guard's ``guard.json``; serving refuses a
configuration that disagrees with it.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import Any, Literal

from alignlab.errors import ConfigError
from alignlab.guard.policy import GuardPolicy
from alignlab.models.base import ChatMessage

ScoreFrom = Literal["client", "template"]


@dataclass(frozen=True)
class Window:
    """How much of a conversation a guard scores, and from where.

    Args:
        prompt_tokens: prompt tokens scored (the last ones).
        score_from: ``client`` (skip the chat template's fixed preamble) or ``template``.
    """

    prompt_tokens: int = 512
    score_from: ScoreFrom = "client"

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1:
            raise ConfigError(f"the prompt window must hold at least one token, not {self.prompt_tokens}")
        if self.score_from not in ("client", "template"):
            raise ConfigError(f"score_from must be 'client' or 'template', not {self.score_from!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str) -> Window:
        """The window a guard folder records.

        Raises:
            ConfigError: no window recorded (a guard from before the window was a field).
        """
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} records no prompt window; retrain the guard with this version")
        return cls(int(spec["prompt_tokens"]), spec["score_from"])


@dataclass(frozen=True)
class PromptView:
    """A conversation's prompt ids as the policy reads them and where scoring starts."""

    ids: list[int]
    start: int

    @property
    def scored(self) -> list[int]:
        """The prompt tokens every stage scores (what the exchange classifier reads)."""
        return self.ids[self.start :]


_PREAMBLES: weakref.WeakKeyDictionary[Any, dict[str, list[int]]] = weakref.WeakKeyDictionary()


def preamble(policy: GuardPolicy, role: str) -> list[int]:
    """The token ids the chat template puts before the content of a first message of ``role``.

    Found as the common prefix of two one-message conversations that differ only in content;
    a template that adds a default system prompt puts it here.
    """
    known = _PREAMBLES.setdefault(policy, {})
    if role not in known:
        a = policy.encode([{"role": role, "content": "a"}])
        b = policy.encode([{"role": role, "content": "b"}])
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        known[role] = a[:n]
    return known[role]


def prompt_view(policy: GuardPolicy, messages: list[ChatMessage], window: Window) -> PromptView:
    """The prompt ids of ``messages`` and the first scored position under ``window``."""
    ids = policy.encode(list(messages))
    start = max(0, len(ids) - window.prompt_tokens)
    if window.score_from == "client" and messages:
        fixed = preamble(policy, messages[0]["role"])
        shared = 0  # where the client's first token merges into the template's, that token is scored
        while shared < min(len(fixed), len(ids)) and ids[shared] == fixed[shared]:
            shared += 1
        start = max(start, shared)
    return PromptView(ids, min(start, len(ids) - 1) if ids else 0)


def fit_context(view: PromptView, response_tokens: int, context: int | None) -> PromptView:
    """``view`` cut from the left so prompt and response fit ``context`` (scoring start kept inside).

    Long conversations are cut, never refused: length alone must not fail an item.
    """
    if context is None or len(view.ids) + response_tokens <= context:
        return view
    keep = max(1, context - response_tokens)
    cut = len(view.ids) - keep
    return PromptView(view.ids[cut:], max(0, view.start - cut))
