"""The hf backend on a tiny random-init model: batching, log-probs, hidden states, limits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from alignlab.errors import ContextLengthError
from alignlab.models.base import Request, SamplingParams

PROMPTS = ["hello world", "the quick brown fox jumps over", "what is the capital"]


def reference_logprobs(backend: Any, prompt_ids: list[int], generated: list[int]) -> list[float]:
    """Log-probs of ``generated`` from one plain forward pass over the whole sequence."""
    ids = torch.tensor([prompt_ids + generated])
    with torch.no_grad():
        logits = backend.model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(logp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(generated)]


def test_greedy_logprobs_match_a_plain_forward_pass(tiny_backend: Any) -> None:
    (gen,) = tiny_backend.generate([PROMPTS[1]], SamplingParams(max_new_tokens=12))
    assert gen.token_ids and len(gen.token_ids) == len(gen.logprobs) == len(gen.tokens)
    expected = reference_logprobs(tiny_backend, tiny_backend.encode(PROMPTS[1]), gen.token_ids)
    np.testing.assert_allclose(gen.logprobs, expected, atol=1e-4)


def test_batched_rows_equal_rows_decoded_alone(tiny_backend: Any) -> None:
    params = SamplingParams(max_new_tokens=10)
    together = tiny_backend.generate(PROMPTS, params)
    for prompt, gen in zip(PROMPTS, together, strict=True):
        (alone,) = tiny_backend.generate([prompt], params)
        assert gen.token_ids == alone.token_ids
        np.testing.assert_allclose(gen.logprobs, alone.logprobs, atol=1e-4)


def test_streamed_hidden_states_equal_a_full_forward(tiny_backend: Any) -> None:
    events = list(tiny_backend.stream(PROMPTS[0], SamplingParams(max_new_tokens=6), hidden_states=True))
    (prompt_event,) = [e for e in events if e.prompt]
    tokens = [e for e in events if e.token is not None]
    assert tokens and events[-1].finish_reason is not None
    prompt_ids = tiny_backend.encode(PROMPTS[0])
    (full,) = tiny_backend.hidden_states([tiny_backend.tokenizer.decode(prompt_ids)])
    ids = prompt_ids + [e.token_id for e in tokens]
    with torch.no_grad():
        out = tiny_backend.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    reference = torch.stack([h[0] for h in out.hidden_states]).numpy()
    assert full.shape == (3, len(prompt_ids), 32)
    assert prompt_event.hidden is not None
    np.testing.assert_allclose(prompt_event.hidden, reference[:, : len(prompt_ids)], atol=1e-4)
    np.testing.assert_allclose(full, reference[:, : len(prompt_ids)], atol=1e-4)
    for i, event in enumerate(tokens):
        assert event.hidden is not None and event.hidden.shape == (3, 32)
        np.testing.assert_allclose(event.hidden, reference[:, len(prompt_ids) + i], atol=1e-4)


def test_length_limit_and_stop_strings(tiny_backend: Any) -> None:
    (gen,) = tiny_backend.generate([PROMPTS[2]], SamplingParams(max_new_tokens=5))
    assert gen.finish_reason == "length" and len(gen.tokens) == 5
    (longer,) = tiny_backend.generate([PROMPTS[2]], SamplingParams(max_new_tokens=20))
    stop = longer.text[3:6]
    assert stop.strip(), "the tiny model's greedy text is needed to pick a stop string"
    (stopped,) = tiny_backend.generate([PROMPTS[2]], SamplingParams(max_new_tokens=20, stop=(stop,)))
    assert stopped.finish_reason == "stop"
    assert stopped.text == longer.text[: longer.text.index(stop)]


def test_sampling_is_seeded(tiny_backend: Any) -> None:
    def sample(seed: int) -> list[int]:
        params = SamplingParams(max_new_tokens=15, temperature=1.0, seed=seed)
        return list(tiny_backend.generate([PROMPTS[0]], params)[0].token_ids)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    (greedy,) = tiny_backend.generate([PROMPTS[0]], SamplingParams(max_new_tokens=15))
    (narrow,) = tiny_backend.generate(
        [PROMPTS[0]], SamplingParams(max_new_tokens=15, temperature=1.0, top_p=1e-6, seed=3)
    )
    assert narrow.token_ids == greedy.token_ids


def test_requests_joining_a_running_batch_decode_as_if_alone(tiny_backend: Any) -> None:
    params = SamplingParams(max_new_tokens=10)
    alone = {i: list(tiny_backend.stream(p, params, hidden_states=True)) for i, p in enumerate(PROMPTS)}
    polls = 0

    def admit() -> list[Request]:
        nonlocal polls
        polls += 1
        if polls == 1:
            return [Request(0, PROMPTS[0], params)]
        if polls == 4:  # two more arrive after three steps: one longer prompt, one too long to run
            return [
                Request(1, PROMPTS[1], params),
                Request("long", "fox " * 200, params),
                Request(2, PROMPTS[2], params),
            ]
        return []

    events = list(tiny_backend.stream_continuous(admit, hidden_states=True))
    (refused,) = [e for key, e in events if key == "long"]
    assert isinstance(refused, ContextLengthError)
    order = [key for key, e in events if not isinstance(e, BaseException) and e.token is not None]
    assert order[:3] == [0, 0, 0] and order.index(1) < len(order) - 1 - order[::-1].index(0), (
        "1 joined mid-answer"
    )
    for key, expected in alone.items():
        got = [e for k, e in events if k == key]
        assert [e.token_id for e in got] == [e.token_id for e in expected]
        assert got[-1].finish_reason == expected[-1].finish_reason
        np.testing.assert_allclose(
            [e.logprob or 0 for e in got], [e.logprob or 0 for e in expected], atol=1e-4
        )
        for a, b in zip(got, expected, strict=True):
            if b.hidden is not None:
                np.testing.assert_allclose(a.hidden, b.hidden, atol=1e-4)


def test_prompt_longer_than_context_is_refused(tiny_backend: Any) -> None:
    with pytest.raises(ContextLengthError, match="128"):
        tiny_backend.generate(["fox " * 200], SamplingParams(max_new_tokens=4))


def test_loglikelihood_matches_a_plain_forward_pass(tiny_backend: Any) -> None:
    context, continuation = "the quick brown", " fox jumps"
    (score,) = tiny_backend.loglikelihood([(context, continuation)])
    target = tiny_backend.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    expected = reference_logprobs(tiny_backend, tiny_backend.encode(context), target)
    np.testing.assert_allclose(score.token_logprobs, expected, atol=1e-4)
    (gen,) = tiny_backend.generate([context], SamplingParams(max_new_tokens=len(target)))
    assert score.is_greedy == (gen.token_ids == target)


def test_chat_prompts_use_the_chat_template(tiny_backend: Any) -> None:
    ids = tiny_backend.encode([{"role": "user", "content": "hello"}])
    text = tiny_backend.tokenizer.decode(ids)
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_scores_and_hidden_states_do_not_depend_on_batching(tiny_backend: Any) -> None:
    requests = [
        ("the quick brown", " fox"),
        ("hello", " world, this is a tiny"),
        ("def add(a, b):", "\n    return"),
    ]
    together = tiny_backend.loglikelihood(requests)
    for request, score in zip(requests, together, strict=True):
        (alone,) = tiny_backend.loglikelihood([request])
        np.testing.assert_allclose(score.token_logprobs, alone.token_logprobs, atol=1e-4)
    states = tiny_backend.hidden_states(PROMPTS)
    for prompt, state in zip(PROMPTS, states, strict=True):
        (alone,) = tiny_backend.hidden_states([prompt])
        assert state.shape == alone.shape
        np.testing.assert_allclose(state, alone, atol=1e-4)


def test_a_running_batch_drops_padding_no_row_attends_to(tiny_backend: Any, monkeypatch: Any) -> None:
    import alignlab.models.decode as decode

    widths: list[int] = []
    forward = decode._forward

    def recording(model: Any, ids: Any, mask: Any, *rest: Any) -> Any:
        widths.append(int(mask.shape[1]))
        return forward(model, ids, mask, *rest)

    monkeypatch.setattr(decode, "_forward", recording)
    long_prompt, short = "the quick brown fox " * 8, SamplingParams(max_new_tokens=30)
    polls = 0

    def admit() -> list[Request]:
        nonlocal polls
        polls += 1
        if polls == 1:  # a long prompt that stops at once, beside a short one that goes on
            return [Request("long", long_prompt, SamplingParams(max_new_tokens=1)), Request("a", "hi", short)]
        if polls == 5:  # a newcomer joins after the long row has gone
            return [Request("b", "hello", short)]
        return []

    events = [(k, e) for k, e in tiny_backend.stream_continuous(admit) if not isinstance(e, BaseException)]
    long_width = len(tiny_backend.encode(long_prompt))
    assert max(widths) >= long_width  # the long row was there
    assert widths[-1] < long_width, "the finished long row's padding is still attended to"
    alone = [e.token_id for e in tiny_backend.stream("hello", short)]
    assert [e.token_id for k, e in events if k == "b"] == alone  # and nothing changed for the rows left
