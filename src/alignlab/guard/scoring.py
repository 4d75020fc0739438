"""Score exchanges with every part of a guard, for evaluation: one record per exchange.

Requests without a response are answered by the policy with activations on (the probe
reads the prefill and every generated token from that same pass, as in serving); given
responses are read with one forward pass. Every stage scores the guard's prompt window
(:mod:`alignlab.guard.window`), exactly as serving does; a conversation too long for the
policy's context is cut from the left, never failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from alignlab.guard.cascade import Guard
from alignlab.guard.classifier import ExchangeClassifier
from alignlab.guard.features import tokens_of
from alignlab.guard.policy import GuardPolicy
from alignlab.guard.window import Window, prompt_view
from alignlab.models.base import ChatMessage, SamplingParams


def layer_features(states: Any, layers: Sequence[int]) -> Any:
    """(layers + 1, tokens, hidden) → (tokens, len(layers) * hidden)."""
    arr = np.asarray(states)
    if arr.ndim == 2:  # one generated token: (layers + 1, hidden)
        return arr[layers].reshape(1, -1)
    return np.transpose(arr[layers], (1, 0, 2)).reshape(arr.shape[1], -1)


def fit_messages(policy: GuardPolicy, messages: list[ChatMessage], answer_tokens: int) -> list[ChatMessage]:
    """``messages`` cut from the front until the prompt and an answer fit the policy's context.

    Whole leading turns go first; a single turn left too long loses its beginning.
    """
    context = policy.context_length
    if context is None or len(policy.encode(messages)) + answer_tokens < context:
        return messages
    kept = list(messages)
    while len(kept) > 1 and len(policy.encode(kept)) + answer_tokens >= context:
        kept = kept[1:]
    role, content = kept[0]["role"], kept[0]["content"]
    while len(policy.encode(kept)) + answer_tokens >= context and content:
        over = len(policy.encode(kept)) + answer_tokens - context + 1
        content = content[max(1, 4 * over) :]  # ~4 characters a token, then refine
        kept = [{"role": role, "content": content}, *kept[1:]]
    return kept


def answer_with_probe(
    guard: Guard, chats: Sequence[list[ChatMessage]], max_tokens: int
) -> list[tuple[str, list[float], int, float]]:
    """For each chat: the policy's answer, the probe's streamed scores, the prompt length, seconds."""
    layers = guard.probe.layers
    start = time.perf_counter()
    chats = [fit_messages(guard.policy, c, max_tokens) for c in chats]
    feats: dict[int, list[Any]] = {i: [] for i in range(len(chats))}
    texts = ["" for _ in chats]
    prompt_len = [0 for _ in chats]
    params = [SamplingParams(max_new_tokens=max_tokens)] * len(chats)
    for row, event in guard.policy.stream_batch(list(chats), params, hidden_states=True):
        texts[row] += event.text
        if event.hidden is not None:
            block = layer_features(event.hidden, layers)
            if event.prompt:  # the policy read it all; the stages score the window
                block = block[prompt_view(guard.policy, chats[row], guard.window).start :]
                prompt_len[row] = len(block)
            feats[row].append(block)
    took = (time.perf_counter() - start) / max(1, len(chats))
    out = []
    for i in range(len(chats)):
        scores = guard.probe.stream_scores(np.concatenate(feats[i]).astype(np.float32))
        out.append((texts[i], scores, prompt_len[i], took))
    return out


def probe_given(
    guard: Guard, chats: Sequence[list[ChatMessage]], responses: Sequence[str]
) -> list[tuple[list[float], int]]:
    """Probe scores over given exchanges (one forward pass each batch) and each prompt's length."""
    rows = [tokens_of(guard.policy, c, r, window=guard.window) for c, r in zip(chats, responses, strict=True)]
    layers = guard.probe.layers
    feats = guard.policy.forward_rows(
        [t.ids for t in rows], lambda _, s: layer_features(s.numpy(), layers), hidden=True
    )
    return [
        (guard.probe.stream_scores(f[t.score_start :].astype(np.float32)), t.response_start - t.score_start)
        for f, t in zip(feats, rows, strict=True)
    ]


def classifier_scores(
    model: ExchangeClassifier,
    policy: GuardPolicy,
    chats: Sequence[list[ChatMessage]],
    responses: Sequence[str],
    view: Any,
    window: Window,
) -> tuple[list[float], list[int], float]:
    """Each exchange's highest per-token logit for one classifier view, the tokens read, and seconds each."""
    rows = [
        tokens_of(policy, c, r, view=view, window=window).scored
        for c, r in zip(chats, responses, strict=True)
    ]
    start = time.perf_counter()
    scores = [max(s) for s in model.token_scores(rows)]
    return scores, [len(r) for r in rows], (time.perf_counter() - start) / max(1, len(rows))


def score_batch(
    guard: Guard,
    baselines: dict[str, ExchangeClassifier],
    items: Sequence[dict[str, Any]],
    max_tokens: int,
) -> Iterator[dict[str, Any]]:
    """Score items (``messages`` and optional ``response``) with the probe and all classifiers."""
    chats = [list(i["messages"]) for i in items]
    if all(i.get("response") is not None for i in items):
        responses = [str(i["response"]) for i in items]
        probed = probe_given(guard, chats, responses)
        answered = [
            (r, s, n, float(i.get("policy_seconds", 0.0)))
            for r, (s, n), i in zip(responses, probed, items, strict=True)
        ]
    else:
        answered = answer_with_probe(guard, chats, max_tokens)
        responses = [a[0] for a in answered]
    window = guard.window
    clf, clf_tokens, clf_s = classifier_scores(
        guard.classifier, guard.policy, chats, responses, "exchange", window
    )
    views = {v: classifier_scores(m, guard.policy, chats, responses, v, window) for v, m in baselines.items()}
    for k, item in enumerate(items):
        text, scores, prompt_len, policy_s = answered[k]
        record: dict[str, Any] = {
            key: item[key] for key in ("id", "set", "label", "augmentation") if key in item
        }
        record.update(
            response=text,
            probe_input_z=max(scores[:prompt_len]) if prompt_len else scores[0],
            probe_z=max(scores),
            classifier_z=clf[k],
            exchange_tokens=clf_tokens[k],
            classifier_seconds=clf_s,
            policy_seconds=policy_s,
        )
        for view, (vs, vt, _) in views.items():
            record[f"{view}_z"] = vs[k]
            record[f"{view}_tokens"] = vt[k]
        yield record
