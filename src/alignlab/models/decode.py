"""Batched token-by-token decoding over a transformers causal LM with a KV cache.

One prefill over the left-padded batch, then one forward per step for the rows still
running; finished rows are dropped from the cache so a long answer does not make short
ones pay. Each step reports, per row, the sampled token, its log-probability under the
raw (temperature 1) distribution, optional top alternatives, and optionally the token's
hidden state at every layer, taken from the forward pass that feeds it (so the stream of
activations costs no extra pass; only the very last token needs one more forward).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TopPLogitsWarper

from alignlab.models.base import SamplingParams


@dataclass
class Step:
    """One decoded token of one row."""

    row: int
    token_id: int
    logprob: float
    top: list[tuple[int, float]]
    hidden: torch.Tensor | None
    is_eos: bool


@dataclass
class Prefill:
    """The hidden states of one row's prompt tokens, ``(layers + 1, tokens, hidden)``."""

    row: int
    hidden: torch.Tensor


def cache_kwarg(model: Any) -> str:
    """The keyword ``model.forward`` takes its KV cache by: transformers renamed
    ``past_key_values`` to ``cache``; both generations are accepted."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The KV cache a forward pass returned, under either name."""
    return getattr(out, "cache", None) or out.past_key_values


def _forward(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any, hidden: bool
) -> tuple[Any, Any]:
    """One pass keeping only the last position's logits; returns the output and the cache."""
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        use_cache=True,
        output_hidden_states=hidden,
        logits_to_keep=1,
        **{cache_kwarg(model): cache},
    )
    return out, returned_cache(out)


def _stack_hidden(out: Any) -> torch.Tensor:
    """``(batch, layers + 1, hidden)`` for the last position of the forward pass."""
    return torch.stack([h[:, -1, :] for h in out.hidden_states], dim=1).float()


class Sampler:
    """Chooses the next token for one row: greedy, or seeded sampling with top-p."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.generator: torch.Generator | None = None
        if params.temperature > 0:
            self.generator = torch.Generator()
            self.generator.manual_seed(params.seed if params.seed is not None else torch.seed())
        self.top_p = TopPLogitsWarper(params.top_p) if params.top_p < 1.0 else None

    def __call__(self, logits: torch.Tensor) -> int:
        if self.generator is None:
            return int(torch.argmax(logits).item())
        scores = (logits / self.params.temperature).unsqueeze(0)
        if self.top_p is not None:
            scores = self.top_p(None, scores)
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs[0], 1, generator=self.generator).item())


def decode(
    model: Any,
    prompts: Sequence[list[int]],
    params: Sequence[SamplingParams],
    *,
    pad_id: int,
    eos_ids: set[int],
    hidden_states: bool = False,
    should_stop: Callable[[int], bool] = lambda row: False,
) -> Iterator[Step | Prefill]:
    """Decode every prompt of the batch, yielding one :class:`Step` per row per token
    (preceded, with ``hidden_states``, by one :class:`Prefill` per row).

    Args:
        model: a transformers causal LM.
        prompts: token ids of each prompt (not padded).
        params: sampling parameters per row (``max_new_tokens`` is respected per row).
        pad_id: id used for left padding (masked out, never attended to).
        eos_ids: token ids that end a row.
        hidden_states: attach each token's all-layer hidden state to its step, and report
            the prompt's hidden states from the prefill.
        should_stop: called after each of a row's steps; True ends that row (stop
            strings, a cancelled client).
    """
    samplers = [Sampler(p) for p in params]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out, cache = _forward(model, ids, mask, pos, None, hidden_states)
        if hidden_states:  # the prompt's activations come with the prefill, at no extra cost
            stacked = torch.stack(out.hidden_states, dim=1).float()
            for i, p in enumerate(prompts):
                yield Prefill(i, stacked[i, :, width - len(p) :])
        yield from _steps(model, out, cache, mask, pos[:, -1:], samplers, eos_ids, hidden_states, should_stop)


def _steps(
    model: Any,
    out: Any,
    cache: Any,
    mask: torch.Tensor,
    last_pos: torch.Tensor,
    samplers: list[Sampler],
    eos_ids: set[int],
    hidden: bool,
    should_stop: Callable[[int], bool],
) -> Iterator[Step]:
    rows = list(range(len(samplers)))
    produced = [0] * len(samplers)
    logits = out.logits[:, -1, :].float()
    while rows:
        chosen = [samplers[r](logits[i]) for i, r in enumerate(rows)]
        logp = torch.log_softmax(logits, dim=-1)
        feed = torch.tensor(chosen, dtype=torch.long).unsqueeze(1)
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        last_pos = last_pos + 1
        states = None
        if hidden:  # the token's activations come from the pass that feeds it
            out, cache = _forward(model, feed, mask, last_pos, cache, True)
            states = _stack_hidden(out)
        keep: list[int] = []
        for i, r in enumerate(rows):
            produced[r] += 1
            is_eos = chosen[i] in eos_ids
            top = _top(logp[i], samplers[r].params.top_logprobs)
            yield Step(
                r, chosen[i], float(logp[i, chosen[i]]), top, None if states is None else states[i], is_eos
            )
            if not (is_eos or produced[r] >= samplers[r].params.max_new_tokens or should_stop(r)):
                keep.append(i)
        if not keep:
            return
        index = torch.tensor(keep, dtype=torch.long) if len(keep) < len(rows) else None
        if index is not None:
            cache.batch_select_indices(index)
            mask, last_pos, feed = mask[index], last_pos[index], feed[index]
            rows = [rows[i] for i in keep]
        if hidden:
            step_logits = out.logits[:, -1, :]
            logits = (step_logits if index is None else step_logits[index]).float()
        else:  # only rows that go on pay for the next pass
            out, cache = _forward(model, feed, mask, last_pos, cache, False)
            logits = out.logits[:, -1, :].float()


def _top(logp: torch.Tensor, k: int) -> list[tuple[int, float]]:
    if k <= 0:
        return []
    vals, idx = torch.topk(logp, k)
    return [(int(t), float(v)) for t, v in zip(idx.tolist(), vals.tolist(), strict=True)]
