"""Batched token-by-token decoding over a transformers causal LM with a KV cache.

One prefill over the left-padded batch, then one forward per step for the rows still
running; finished rows are dropped from the cache so a long answer does not make short
ones pay. Each step reports, per row, the sampled token, its log-probability under the
raw (temperature 1) distribution, optional top alternatives, and optionally the token's
hidden state at every layer, taken from the forward pass that feeds it (so the stream of
activations costs no extra pass; only the very last token needs one more forward).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from transformers import TopPLogitsWarper

from alignlab.models.base import SamplingParams
from alignlab.models.kvcache import cache_kwarg, returned_cache
from alignlab.models.padding import pad


@dataclass
class Step:
    """One decoded token of one row (``row`` is the row's index, or its key when streaming)."""

    row: Any
    token_id: int
    logprob: float
    top: list[tuple[int, float]]
    hidden: torch.Tensor | None
    is_eos: bool


@dataclass
class Prefill:
    """The hidden states of one row's prompt tokens, ``(layers + 1, tokens, hidden)``."""

    row: Any
    hidden: torch.Tensor


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


Admit = Callable[[], Sequence[tuple[Hashable, list[int], SamplingParams]]]
T = TypeVar("T")


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
    rows = [(row, ids, p) for row, (ids, p) in enumerate(zip(prompts, params, strict=True))]
    yield from decode_stream(
        model,
        admit_once(rows),
        pad_id=pad_id,
        eos_ids=eos_ids,
        hidden_states=hidden_states,
        should_stop=should_stop,
    )


def admit_once(items: Sequence[T]) -> Callable[[], list[T]]:
    """An ``admit`` for a fixed batch: everything at the first call, nothing after."""
    waiting = list(items)

    def admit() -> list[T]:
        taken = list(waiting)
        waiting.clear()
        return taken

    return admit


def decode_stream(
    model: Any,
    admit: Admit,
    *,
    pad_id: int,
    eos_ids: set[int],
    hidden_states: bool = False,
    should_stop: Callable[[Any], bool] = lambda key: False,
) -> Iterator[Step | Prefill]:
    """Continuous batching: decode rows while ``admit()`` adds new ones between steps.

    ``admit()`` is called before every step and returns ``(key, prompt ids, params)`` for
    each request to start now (``[]`` for none); steps and prefills carry that key as their
    ``row``. New prompts are prefilled together and join the running batch at once: their keys
    and values are left-padded to a common length and stacked onto the running cache, so a
    request arriving mid-answer waits for one step, not for the whole batch. The generator
    ends when no row is left and ``admit()`` returns nothing. Models whose cache is not one
    plain key/value tensor per layer (sliding-window layers) admit only between batches.
    """
    running: _Running | None = None
    with torch.inference_mode():
        while True:
            new = list(admit()) if running is None or running.can_merge() else []
            if new:
                batch, prefills = _prefill(model, new, pad_id, hidden_states)
                yield from prefills
                running = batch if running is None else running.merge(batch)
            if running is None:
                return
            yield from running.step(model, eos_ids, hidden_states, should_stop)
            if not running.keys:
                running = None


def _prefill(
    model: Any, new: Sequence[tuple[Hashable, list[int], SamplingParams]], pad_id: int, hidden: bool
) -> tuple[_Running, list[Prefill]]:
    """One forward over the left-padded new prompts: their cache, next-token logits and prefills."""
    prompts = [ids for _, ids, _ in new]
    ids, mask = pad(prompts, pad_id, "left")
    width = ids.shape[1]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out, cache = _forward(model, ids, mask, pos, None, hidden)
    prefills = []
    if hidden:  # the prompt's activations come with the prefill, at no extra cost
        stacked = torch.stack(out.hidden_states, dim=1).float()
        prefills = [
            Prefill(key, stacked[i, :, width - len(p) :])
            for i, ((key, _, _), p) in enumerate(zip(new, prompts, strict=True))
        ]
    running = _Running(
        keys=[key for key, _, _ in new],
        samplers=[Sampler(p) for _, _, p in new],
        produced=[0] * len(new),
        cache=cache,
        mask=mask,
        last_pos=pos[:, -1:],
        logits=out.logits[:, -1, :].float(),
    )
    return running, prefills


@dataclass
class _Running:
    """The rows being decoded: their keys, samplers, KV cache, mask, positions and next logits."""

    keys: list[Any]
    samplers: list[Sampler]
    produced: list[int]
    cache: Any
    mask: torch.Tensor
    last_pos: torch.Tensor
    logits: torch.Tensor

    def can_merge(self) -> bool:
        return all(type(layer).__name__ == "DynamicLayer" for layer in self.cache.layers)

    def _compact(self) -> None:
        """Drop the leading cache columns no remaining row attends to.

        Rows that joined a running batch were left-padded to its width, so without this the
        width only grows while requests keep coming, and every step attends over padding left by
        rows long finished. Positions are explicit, so cropping changes no score.
        """
        if not self.keys or not self.can_merge():
            return
        lead = int(torch.argmax(self.mask.any(dim=0).to(torch.int8)))
        if lead > 0:
            self.mask = self.mask[:, lead:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, lead:, :]
                layer.values = layer.values[:, :, lead:, :]

    def merge(self, other: _Running) -> _Running:
        """Both batches as one: the shorter cache and mask are left-padded (masked) to the longer."""
        from transformers import DynamicCache

        width = max(self.mask.shape[1], other.mask.shape[1])

        def left(t: torch.Tensor, dim: int) -> torch.Tensor:
            pad = list(t.shape)
            pad[dim] = width - t.shape[dim]
            return torch.cat([t.new_zeros(pad), t], dim=dim)

        layers = [
            (torch.cat([left(a.keys, 2), left(b.keys, 2)]), torch.cat([left(a.values, 2), left(b.values, 2)]))
            for a, b in zip(self.cache.layers, other.cache.layers, strict=True)
        ]
        return _Running(
            keys=self.keys + other.keys,
            samplers=self.samplers + other.samplers,
            produced=self.produced + other.produced,
            cache=DynamicCache(ddp_cache_data=layers),
            mask=torch.cat([left(self.mask, 1), left(other.mask, 1)]),
            last_pos=torch.cat([self.last_pos, other.last_pos]),
            logits=torch.cat([self.logits, other.logits]),
        )

    def step(
        self, model: Any, eos_ids: set[int], hidden: bool, should_stop: Callable[[Any], bool]
    ) -> Iterator[Step]:
        """Sample one token per row, report it, drop finished rows and compute the next logits."""
        chosen = [sampler(self.logits[i]) for i, sampler in enumerate(self.samplers)]
        logp = torch.log_softmax(self.logits, dim=-1)
        feed = torch.tensor(chosen, dtype=torch.long).unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones((len(chosen), 1), dtype=torch.long)], dim=1)
        self.last_pos = self.last_pos + 1
        states, next_logits = None, None
        if hidden:  # the token's activations come from the pass that feeds it
            out, self.cache = _forward(model, feed, self.mask, self.last_pos, self.cache, True)
            states, next_logits = _stack_hidden(out), out.logits[:, -1, :]
        keep: list[int] = []
        for i, key in enumerate(self.keys):
            self.produced[i] += 1
            is_eos = chosen[i] in eos_ids
            top = _top(logp[i], self.samplers[i].params.top_logprobs)
            state = None if states is None else states[i]
            yield Step(key, chosen[i], float(logp[i, chosen[i]]), top, state, is_eos)
            limit = self.samplers[i].params.max_new_tokens
            if not (is_eos or self.produced[i] >= limit or should_stop(key)):
                keep.append(i)
        if len(keep) < len(self.keys):
            index = torch.tensor(keep, dtype=torch.long)
            self.cache.batch_select_indices(index)
            self.mask, self.last_pos, feed = self.mask[index], self.last_pos[index], feed[index]
            self.keys = [self.keys[i] for i in keep]
            self.samplers = [self.samplers[i] for i in keep]
            self.produced = [self.produced[i] for i in keep]
            if next_logits is not None:
                next_logits = next_logits[index]
            self._compact()
        if not keep:
            return
        if next_logits is None:  # only rows that go on pay for the next pass
            out, self.cache = _forward(model, feed, self.mask, self.last_pos, self.cache, False)
            next_logits = out.logits[:, -1, :]
        self.logits = next_logits.float()


def _top(logp: torch.Tensor, k: int) -> list[tuple[int, float]]:
    if k <= 0:
        return []
    vals, idx = torch.topk(logp, k)
    return [(int(t), float(v)) for t, v in zip(idx.tolist(), vals.tolist(), strict=True)]
