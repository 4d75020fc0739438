"""A streaming guard session: one conversation checked token by token while it is generated.

With a local policy (:class:`ProbeSession`) stage 1 is the probe reading the activations the
policy computes anyway — the prompt's from the prefill, each new token's from the pass that
feeds it — so screening costs no extra forward pass. When the probe's moving average crosses
its threshold the exchange so far goes to the exchange classifier and the ensemble decides;
from then on the classifier reads every new token as it comes (its KV cache keeps the
prefix, so each read is one token). With a remote upstream (:class:`ClassifierSession`)
there are no activations: the exchange classifier itself reads every token.

Either session is fed the prompt, then every token, then the end; each step returns a
:class:`~alignlab.guard.cascade.Verdict` when the exchange is flagged, else ``None``. A
session also says which stages its current state requires (:meth:`required`) and how many
response units each stage has read (:meth:`read`); the streaming guard releases a unit only
when every required stage has read it (see :mod:`alignlab.guard.streaming`). A unit is one
token event, and the end of the stream (whose event may carry the last text) is one more.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alignlab.guard.cascade import Guard, Verdict
from alignlab.guard.classifier import ClassifierStream
from alignlab.guard.scoring import layer_features
from alignlab.guard.window import prompt_view
from alignlab.models.base import ChatMessage

PROBE, CLASSIFIER = "probe", "classifier"


class ProbeSession:
    """Probe on every token; once escalated, the exchange classifier on every token too (local policy)."""

    def __init__(self, guard: Guard, messages: Sequence[ChatMessage]) -> None:
        self.guard = guard
        self.view = prompt_view(guard.policy, list(messages), guard.window)
        self.response_ids: list[int] = []
        self.ema: float | None = None
        self.peak = float("-inf")
        self.stream: ClassifierStream | None = None
        self.probe_read = 0
        self.probe_scored = 0  # scored tokens (window and response) the probe has read
        self.ended = False
        self.last: Verdict = Verdict(False, PROBE)
        self.trace: list[dict[str, float | None]] = []
        self.probe_seconds = 0.0
        self.classifier_seconds = 0.0

    def required(self) -> tuple[str, ...]:
        """The stages that must read a unit before it leaves: the probe, and the classifier once escalated."""
        return (PROBE,) if self.stream is None else (PROBE, CLASSIFIER)

    def read(self) -> dict[str, int]:
        """Response units each stage has read."""
        done = int(self.ended)
        out = {PROBE: self.probe_read + (done if self.probe_read == len(self.response_ids) else 0)}
        if self.stream is not None:
            clf = self.stream.seen - len(self.view.scored)
            out[CLASSIFIER] = clf + (done if clf == len(self.response_ids) else 0)
        return out

    def _probe(self, hidden: Any, skip: int = 0) -> None:
        start = time.perf_counter()
        feats = layer_features(hidden, self.guard.probe.layers)[skip:].astype(np.float32)
        probe = self.guard.probe
        emas = []
        for z in probe(torch.as_tensor(feats)).tolist():
            self.ema = z if self.ema is None else probe.alpha * z + (1 - probe.alpha) * self.ema
            emas.append(self.ema)
        adjusted = probe.adjust(emas, first=self.probe_scored + 1)  # length-adjusted where fitted
        self.probe_scored += len(emas)
        self.peak = max([self.peak, *adjusted])
        self.probe_seconds += time.perf_counter() - start

    def _decide(self) -> Verdict | None:
        if self.stream is None:
            if self.peak < self.guard.thresholds["probe_threshold"]:
                self.last = Verdict(False, PROBE, {PROBE: self.peak, CLASSIFIER: None, "ensemble": None})
                return self._traced()
            self.stream = ClassifierStream(
                self.guard.classifier
            )  # escalated: the classifier reads from here on
        start = time.perf_counter()
        exchange = self.view.scored + self.response_ids
        clf_z = self.stream.feed(exchange[self.stream.seen :])
        self.classifier_seconds += time.perf_counter() - start
        self.last = self.guard.decide(self.peak, clf_z)
        return self._traced()

    def _traced(self) -> Verdict | None:
        self.trace.append({"probe": self.ema, **{k: v for k, v in self.last.scores.items() if k != PROBE}})
        return self.last if self.last.flagged else None

    def cheap(self) -> bool:
        """Whether the next token's check is the probe alone (not yet escalated)."""
        return self.stream is None and self.peak < self.guard.thresholds["probe_threshold"]

    def prompt(self, hidden: Any) -> Verdict | None:
        """Screen the conversation from the prefill's activations (the scored window only)."""
        self._probe(hidden, skip=self.view.start)
        return self._decide()

    def token(self, token_id: int | None, text: str, hidden: Any) -> Verdict | None:
        """Screen the exchange after one more token."""
        if token_id is not None:
            self.response_ids.append(token_id)
        if hidden is not None:
            self._probe(hidden)
            self.probe_read += 1
        return self._decide()

    def end(self, text: str = "") -> Verdict | None:
        """The end of the stream: every token was read as it came, so nothing is left to score."""
        self.ended = True
        return None


class ClassifierSession:
    """The exchange classifier alone, reading every token of a remote upstream's text."""

    def __init__(self, guard: Guard, messages: Sequence[ChatMessage]) -> None:
        self.guard = guard
        self.view = prompt_view(guard.policy, list(messages), guard.window)
        self.stream = ClassifierStream(guard.classifier)
        self.text = ""
        self.unit_ends: list[int] = []  # characters of text once each unit has arrived
        self.fed: list[int] = []  # response ids the classifier has read
        self.read_chars = 0
        self.last = Verdict(False, CLASSIFIER)
        self.trace: list[dict[str, float | None]] = []
        self.probe_seconds = 0.0
        self.classifier_seconds = 0.0

    def required(self) -> tuple[str, ...]:
        return (CLASSIFIER,)

    def read(self) -> dict[str, int]:
        return {CLASSIFIER: bisect.bisect_right(self.unit_ends, self.read_chars)}

    def _feed(self, final: bool) -> Verdict | None:
        """Read the text so far; the last token waits (it may still merge with the next text) unless final."""
        start = time.perf_counter()
        tokenizer = self.guard.policy.tokenizer
        ids = list(tokenizer(self.text, add_special_tokens=False)["input_ids"]) if self.text else []
        stable = ids if final else ids[:-1]
        common = 0
        while common < min(len(self.fed), len(stable)) and self.fed[common] == stable[common]:
            common += 1
        if common < len(self.fed):  # a later character changed how earlier text tokenises
            self.stream.rewind(len(self.view.scored) + common)
            self.fed = self.fed[:common]
        fresh = (self.view.scored if self.stream.seen == 0 else []) + stable[len(self.fed) :]
        z = self.stream.feed(fresh)
        self.fed = stable
        decoded = tokenizer.decode(self.fed) if self.fed else ""
        read = os.path.commonprefix([decoded, self.text])  # noqa: RUF071 (characters read, not a path)
        self.read_chars = len(self.text) if final else len(read)
        self.classifier_seconds += time.perf_counter() - start
        flagged = z >= self.guard.thresholds["classifier_threshold"]
        self.last = Verdict(flagged, CLASSIFIER, {PROBE: None, CLASSIFIER: z, "ensemble": None}, True)
        self.trace.append({"probe": None, CLASSIFIER: z, "ensemble": None})
        return self.last if flagged else None

    def cheap(self) -> bool:
        """Never: the classifier reads every token (a worker thread keeps the event loop free)."""
        return False

    def prompt(self, hidden: Any) -> Verdict | None:
        return self._feed(final=False)

    def token(self, token_id: int | None, text: str, hidden: Any) -> Verdict | None:
        self.text += text
        self.unit_ends.append(len(self.text))
        return self._feed(final=False)

    def end(self, text: str = "") -> Verdict | None:
        self.text += text
        self.unit_ends.append(len(self.text))
        return self._feed(final=True)
