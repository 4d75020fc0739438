"""The ``hf`` backend: any transformers causal LM, from a local directory, a GGUF file or a hub id.

Runs the weights in-process (CPU by default), so it can do everything the backend
interface offers, per-token hidden states of every layer included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alignlab.errors import ContextLengthError, DependencyError, ModelNotFoundError
from alignlab.models.base import (
    Continuation,
    Generation,
    Prompt,
    Request,
    SamplingParams,
    TokenEvent,
    collect,
)
from alignlab.models.detok import TextStream
from alignlab.models.padding import pad

R = TypeVar("R")


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise DependencyError(exc.name or "torch", "hf") from exc
    return torch


class HFBackend:
    """A transformers causal LM behind the backend interface.

    Args:
        model: a loaded ``AutoModelForCausalLM``.
        tokenizer: its tokenizer (a chat template is needed for chat prompts).
        name: the name the model is served and recorded under.
        score_batch_size: rows per forward pass for scoring and hidden states.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, score_batch_size: int = 8) -> None:
        _import_torch()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.score_batch_size = score_batch_size
        self.context_length: int | None = getattr(model.config, "max_position_embeddings", None)
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos_list = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in [*eos_list, tokenizer.eos_token_id] if e is not None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.pad_id = int(pad)

    @classmethod
    def load(cls, source: str | Path, *, name: str | None = None, dtype: str = "float32") -> HFBackend:
        """Load from a local directory, a ``.gguf`` file, or a hub id (where a hub is reachable).

        Raises:
            ModelNotFoundError: nothing loadable at ``source``.
        """
        torch = _import_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(source)
        kwargs: dict[str, Any] = {}
        where: str | Path = source
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelNotFoundError(f"no GGUF file at {path}")
            where, kwargs["gguf_file"] = path.parent, path.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kwargs)
        except OSError as exc:
            raise ModelNotFoundError(
                f"cannot load a model from {source!s}: {exc}. Give a local model directory, a .gguf file, "
                "or a hub id when a hub is reachable."
            ) from exc
        return cls(model, tokenizer, name or path.name or str(source))

    # -- prompts -----------------------------------------------------------------------

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt; a chat gets the chat template and the assistant header.

        A chat whose last message is the assistant's is a prefill: that message is left
        open, so the reply continues it (its text is not repeated in the reply).
        """
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        messages = list(prompt)
        prefill = bool(messages) and messages[-1]["role"] == "assistant"
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=not prefill, continue_final_message=prefill, tokenize=True
        )
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return [int(i) for i in ids]

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    def _checked(self, prompt: Prompt, params: SamplingParams) -> tuple[list[int], SamplingParams]:
        ids = self.encode(prompt)
        limit = self.context_length
        if limit is None:
            return ids, params
        if len(ids) >= limit:
            raise ContextLengthError(len(ids), limit)
        room = limit - len(ids)
        if params.max_new_tokens > room:
            params = SamplingParams(**{**params.__dict__, "max_new_tokens": room})
        return ids, params

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def token_text(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id], skip_special_tokens=False))

    # -- generation --------------------------------------------------------------------

    def stream_batch(
        self,
        prompts: Sequence[Prompt],
        params: Sequence[SamplingParams],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[int], bool] = lambda row: False,
    ) -> Iterator[tuple[int, TokenEvent]]:
        """Decode a batch together, yielding ``(row, event)`` as tokens come.

        Each row ends with an event whose ``finish_reason`` is set. ``cancelled(row)``
        is polled after every token of that row.

        Raises:
            ContextLengthError: a prompt does not fit the context.
        """
        from alignlab.models.decode import admit_once

        requests = [Request(row, p, sp) for row, (p, sp) in enumerate(zip(prompts, params, strict=True))]
        events = self.stream_continuous(
            admit_once(requests), hidden_states=hidden_states, cancelled=cancelled
        )
        for key, event in events:
            if isinstance(event, BaseException):  # a prompt too long: it comes before any token
                raise event
            yield int(key), event

    def stream_continuous(
        self,
        admit: Callable[[], Sequence[Request]],
        *,
        hidden_states: bool = False,
        cancelled: Callable[[Any], bool] = lambda key: False,
    ) -> Iterator[tuple[Any, TokenEvent | BaseException]]:
        """Continuous batching: decode the running requests while ``admit()`` adds new ones.

        ``admit()`` is polled before every decoding step and returns the requests to start
        now; each joins the running batch after one prefill. Events come as ``(key, event)``;
        a request that cannot start (its prompt does not fit the context) gets its
        :class:`ContextLengthError` as its only event, and the others go on. The iterator ends
        when nothing is running and ``admit()`` returns nothing.
        """
        from alignlab.models.decode import Prefill, decode_stream

        streams: dict[Any, TextStream] = {}
        params: dict[Any, SamplingParams] = {}
        refused: list[tuple[Any, BaseException]] = []

        def admit_ids() -> list[tuple[Any, list[int], SamplingParams]]:
            started = []
            for request in admit():
                try:
                    ids, sp = self._checked(request.prompt, request.params)
                except ContextLengthError as exc:
                    refused.append((request.key, exc))
                    continue
                streams[request.key], params[request.key] = TextStream(self._text, sp.stop), sp
                started.append((request.key, ids, sp))
            return started

        def should_stop(key: Any) -> bool:  # a finished request's stream is already gone
            stream = streams.get(key)
            return stream is None or stream.stopped or cancelled(key)

        steps = decode_stream(
            self.model,
            admit_ids,
            pad_id=self.pad_id,
            eos_ids=self.eos_ids,
            hidden_states=hidden_states,
            should_stop=should_stop,
        )
        for step in steps:
            yield from refused
            refused.clear()
            if isinstance(step, Prefill):
                yield step.row, TokenEvent("", hidden=step.hidden.numpy(), prompt=True)
                continue
            stream = streams[step.row]
            if not step.is_eos:  # the end-of-sequence token is a signal, not part of the answer
                delta = stream.push(step.token_id)
                hidden = None if step.hidden is None else step.hidden.numpy()
                top = [(self.token_text(t), lp) for t, lp in step.top]
                token = self.token_text(step.token_id)
                yield (
                    step.row,
                    TokenEvent(delta, token, step.token_id, step.logprob, hidden, top_logprobs=top),
                )
            finish = self._finish(step.row, step.is_eos, stream, params[step.row], cancelled)
            if finish is not None:
                yield step.row, TokenEvent(stream.flush(), finish_reason=finish)
                del streams[step.row], params[step.row]
        yield from refused

    def _finish(
        self,
        row: Any,
        is_eos: bool,
        stream: TextStream,
        params: SamplingParams,
        cancelled: Callable[[Any], bool],
    ) -> Any:
        if cancelled(row):
            return "cancelled"
        if is_eos or stream.stopped:
            return "stop"
        if len(stream.ids) >= params.max_new_tokens:
            return "length"
        return None

    def stream(
        self, prompt: Prompt, params: SamplingParams, *, hidden_states: bool = False
    ) -> Iterator[TokenEvent]:
        """Stream one continuation; closing the iterator stops decoding."""
        for _, event in self.stream_batch([prompt], [params], hidden_states=hidden_states):
            yield event

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """Generate one continuation per prompt, all rows decoded as one batch."""
        return collect(
            self.stream_batch(prompts, [params] * len(prompts)), [self.count_tokens(p) for p in prompts]
        )

    # -- scoring -----------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[tuple[Prompt, str]]) -> list[Continuation]:
        """Log-likelihood of each continuation after its prompt, rows batched by length."""
        rows = []
        for prompt, continuation in requests:
            context = self.encode(prompt)
            rows.append((context, list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])))

        def score(r: int, logits: Any) -> Continuation:
            context, target = rows[r]
            return _continuation(logits[len(context) - 1 : len(context) + len(target) - 1], target)

        return self.forward_rows([c + t for c, t in rows], score, hidden=False)

    def forward_rows(
        self, rows: list[list[int]], reduce: Callable[[int, Any], R], *, hidden: bool
    ) -> list[R]:
        """``reduce(row, output)`` for every row, where output is the row's logits ``(tokens, vocab)``
        or, with ``hidden``, its hidden states ``(layers + 1, tokens, hidden)``. Rows of similar
        length share a right-padded forward pass; results come back in input order."""
        torch = _import_torch()
        for ids in rows:
            if self.context_length is not None and len(ids) > self.context_length:
                raise ContextLengthError(len(ids), self.context_length)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        results: dict[int, R] = {}
        for start in range(0, len(order), self.score_batch_size):
            chunk = order[start : start + self.score_batch_size]
            batch_ids, mask = pad([rows[r] for r in chunk], self.pad_id)
            with torch.inference_mode():
                if hidden:  # the base model alone: no vocabulary projection needed
                    out = self.model.base_model(
                        input_ids=batch_ids, attention_mask=mask, output_hidden_states=True
                    )
                    batch = torch.stack(out.hidden_states, dim=1).float()
                else:
                    batch = self.model(input_ids=batch_ids, attention_mask=mask).logits.float()
                for i, r in enumerate(chunk):
                    n = len(rows[r])
                    results[r] = reduce(r, batch[i, :, :n] if hidden else batch[i, :n])
        return [results[r] for r in range(len(rows))]

    def token_logprobs(
        self, text: str, top: int = 0
    ) -> tuple[list[int], list[float | None], list[dict[str, float] | None]]:
        """Every token of ``text``, its log-probability given the ones before, and its ``top``
        most likely alternatives (``None`` for the first token, which has no context)."""
        torch = _import_torch()
        ids = self.encode(text)
        if self.context_length is not None and len(ids) > self.context_length:
            raise ContextLengthError(len(ids), self.context_length)
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1).tolist()
        tops: list[dict[str, float] | None] = [None] * len(ids)
        if top > 0:
            vals, idx = torch.topk(logp, top, dim=-1)
            for pos in range(len(ids) - 1):
                tops[pos + 1] = {
                    self.token_text(int(t)): float(v) for t, v in zip(idx[pos], vals[pos], strict=True)
                }
        return ids, [None, *picked], tops

    def hidden_states(self, prompts: Sequence[Prompt]) -> list[npt.NDArray[np.float32]]:
        """Per-token hidden states of every layer: one ``(layers + 1, tokens, hidden)`` array per prompt."""
        rows = [self.encode(p) for p in prompts]
        return self.forward_rows(rows, lambda r, states: states.numpy(), hidden=True)


def _continuation(logits: Any, target: list[int]) -> Continuation:
    """The continuation's score from the logits at the positions that predict its tokens."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    wanted = torch.tensor(target, dtype=torch.long)
    token_lp = logp.gather(1, wanted.unsqueeze(1)).squeeze(1)
    greedy = bool((logp.argmax(-1) == wanted).all().item())
    return Continuation(float(token_lp.sum()), [float(x) for x in token_lp.tolist()], greedy)
