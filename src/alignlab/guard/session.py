"""A streaming guard session: one conversation checked token by token while it is generated.

With a local policy (:class:`ProbeSession`) stage 1 is the probe reading the activations the
policy computes anyway — the prompt's from the prefill, each new token's from the pass that
feeds it — so screening costs no extra forward pass. When the probe's moving average crosses
its threshold the exchange so far goes to the exchange classifier and the ensemble decides;
from then on the classifier reads only the new tokens (its KV cache keeps the prefix).
With a remote upstream (:class:`ClassifierSession`) there are no activations: the exchange
classifier itself screens the text every few tokens and at the end.

Either session is fed the prompt, then every token, then the end; each step returns a
:class:`~alignlab.guard.cascade.Verdict` when the exchange is flagged, else ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alignlab.guard.cascade import Guard, Verdict
from alignlab.guard.classifier import ClassifierStream
from alignlab.guard.scoring import MAX_PROMPT, layer_features
from alignlab.models.base import ChatMessage


class ProbeSession:
    """Probe on every token, classifier on escalation (local policy)."""

    def __init__(self, guard: Guard, messages: Sequence[ChatMessage], recheck_every: int = 8) -> None:
        self.guard = guard
        self.prompt_ids = guard.policy.encode(list(messages))[-MAX_PROMPT:]
        self.response_ids: list[int] = []
        self.ema: float | None = None
        self.peak = float("-inf")
        self.escalated_at: int | None = None
        self.stream: ClassifierStream | None = None
        self.recheck_every = recheck_every
        self.last: Verdict = Verdict(False, "probe")
        self.probe_seconds = 0.0
        self.classifier_seconds = 0.0

    def _probe(self, hidden: Any) -> None:
        start = time.perf_counter()
        feats = layer_features(hidden, self.guard.probe.layers).astype(np.float32)
        alpha = self.guard.probe.alpha
        for z in self.guard.probe(torch.as_tensor(feats)).tolist():
            self.ema = z if self.ema is None else alpha * z + (1 - alpha) * self.ema
            self.peak = max(self.peak, self.ema)
        self.probe_seconds += time.perf_counter() - start

    def _decide(self, force: bool = False) -> Verdict | None:
        t = self.guard.thresholds
        if self.peak < t["probe_threshold"]:
            self.last = Verdict(False, "probe", {"probe": self.peak, "classifier": None, "ensemble": None})
            return None
        n = len(self.response_ids)
        due = self.escalated_at is None or force or (n - self.escalated_at) % self.recheck_every == 0
        if self.escalated_at is None:
            self.escalated_at = n
        if not due:
            return None
        start = time.perf_counter()
        if self.stream is None:
            self.stream = ClassifierStream(self.guard.classifier)
        exchange = self.prompt_ids + self.response_ids
        clf_z = self.stream.feed(exchange[self.stream.seen :])
        self.classifier_seconds += time.perf_counter() - start
        self.last = self.guard.decide(self.peak, clf_z)
        return self.last if self.last.flagged else None

    def cheap(self) -> bool:
        """Whether the next token's check is the probe alone (not yet escalated)."""
        return self.peak < self.guard.thresholds["probe_threshold"]

    def prompt(self, hidden: Any) -> Verdict | None:
        """Screen the whole conversation from the prefill's activations."""
        self._probe(hidden)
        return self._decide()

    def token(self, token_id: int | None, text: str, hidden: Any) -> Verdict | None:
        """Screen the exchange after one more token."""
        if token_id is not None:
            self.response_ids.append(token_id)
        if hidden is not None:
            self._probe(hidden)
        return self._decide()

    def end(self) -> Verdict | None:
        """A last full check of the finished exchange (if it was ever escalated)."""
        return self._decide(force=True) if self.escalated_at is not None else None


class ClassifierSession:
    """The exchange classifier alone, re-scoring the text every few tokens (remote upstream)."""

    def __init__(self, guard: Guard, messages: Sequence[ChatMessage], recheck_every: int = 8) -> None:
        self.guard = guard
        self.prompt_ids = guard.policy.encode(list(messages))[-MAX_PROMPT:]
        self.text = ""
        self.count = 0
        self.recheck_every = recheck_every
        self.last = Verdict(False, "classifier")
        self.probe_seconds = 0.0
        self.classifier_seconds = 0.0

    def _decide(self) -> Verdict | None:
        start = time.perf_counter()
        ids = self.prompt_ids + list(
            self.guard.policy.tokenizer(self.text, add_special_tokens=False)["input_ids"]
        )
        z = max(self.guard.classifier.token_scores([ids])[0])
        self.classifier_seconds += time.perf_counter() - start
        flagged = z >= self.guard.thresholds["classifier_threshold"]
        self.last = Verdict(flagged, "classifier", {"probe": None, "classifier": z, "ensemble": None}, True)
        return self.last if flagged else None

    def cheap(self) -> bool:
        """Whether the next token only accumulates text (no classifier re-check)."""
        return (self.count + 1) % self.recheck_every != 0

    def prompt(self, hidden: Any) -> Verdict | None:
        return self._decide()

    def token(self, token_id: int | None, text: str, hidden: Any) -> Verdict | None:
        self.text += text
        self.count += 1
        return self._decide() if self.count % self.recheck_every == 0 else None

    def end(self) -> Verdict | None:
        return self._decide()
