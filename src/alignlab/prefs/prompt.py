"""The HHH prompt, and a language model that computes a fixed prompt once and reuses it.

The shipped prompt (``hhh_prompt.json`` beside this module) follows the format of
Askell et al. (2021) with our own text: a preamble, then 14 dialogues of ``Human:`` and
``Assistant:`` turns separated by ``-----`` lines. A user's file replaces it: the same JSON
shape, or a ``.txt`` file used verbatim.

:class:`PrefixedLM` runs the prompt through the model once, keeps its keys and values,
and scores or predicts continuations after it, so a 2,000-token prompt costs once rather
than once per item (the HHH evaluation with a prompt, and the context-distillation teacher).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alignlab.errors import DataError
from alignlab.models.kvcache import cache_argument, returned_cache
from alignlab.models.padding import pad

PROMPT_RESOURCE = "hhh_prompt.json"


@dataclass(frozen=True)
class HHHPrompt:
    """A preamble and example dialogues, each a list of ``{"role": "human"|"assistant", "text"}``."""

    preamble: str
    dialogues: tuple[tuple[tuple[str, str], ...], ...]
    separator: str = "-----"

    def text(self) -> str:
        """The prompt as the model sees it; a transcript starting ``\\n\\nHuman:`` follows it."""
        names = {"human": "Human", "assistant": "Assistant"}
        blocks = [self.preamble.strip()]
        for dialogue in self.dialogues:
            blocks.append("\n\n".join(f"{names[role]}: {text.strip()}" for role, text in dialogue))
        return f"\n\n{self.separator}\n\n".join(blocks) + f"\n\n{self.separator}"


def load_prompt(path: str | Path | None = None) -> str:
    """The HHH prompt text: the shipped one, or ``path`` (JSON like the shipped file, or ``.txt`` verbatim).

    Raises:
        DataError: the file is missing or not of the expected shape.
    """
    if path is not None and Path(path).suffix != ".json":
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(path, None, f"cannot read the prompt: {exc.strerror or exc}") from exc
    where = str(path) if path is not None else f"alignlab.prefs/{PROMPT_RESOURCE}"
    try:
        raw = (
            Path(path).read_text(encoding="utf-8")
            if path is not None
            else resources.files("alignlab.prefs").joinpath(PROMPT_RESOURCE).read_text(encoding="utf-8")
        )
        return parse_prompt(json.loads(raw), where).text()
    except (OSError, ValueError) as exc:
        raise DataError(where, None, f"cannot read the prompt: {exc}") from exc


def parse_prompt(data: Any, where: str = "prompt") -> HHHPrompt:
    """An :class:`HHHPrompt` from its JSON form.

    Raises:
        DataError: a field is missing, a role is unknown, or a dialogue does not alternate
            human and assistant turns starting with the human.
    """
    try:
        dialogues = tuple(tuple((str(t["role"]), str(t["text"])) for t in d) for d in data["dialogues"])
        preamble = str(data["preamble"])
    except (KeyError, TypeError) as exc:
        raise DataError(
            where, None, f"a prompt needs 'preamble' and 'dialogues' of {{role, text}}: {exc}"
        ) from exc
    for number, dialogue in enumerate(dialogues, 1):
        roles = [role for role, _ in dialogue]
        if not roles or roles != _alternating(len(roles)):
            raise DataError(where, None, f"dialogue {number} must alternate human and assistant, human first")
    return HHHPrompt(preamble, dialogues, str(data.get("separator", "-----")))


def _alternating(n: int) -> list[str]:
    return [("human", "assistant")[i % 2] for i in range(n)]


class PrefixedLM:
    """A causal LM with a fixed text prefix computed once.

    Args:
        lm: a transformers causal LM.
        tokenizer: its tokenizer.
        prefix: text every row is preceded by (``""`` for none).
    """

    def __init__(self, lm: Any, tokenizer: Any, prefix: str = "") -> None:
        import torch

        self.lm, self.tokenizer = lm, tokenizer
        self.prefix_ids: list[int] = (
            list(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []
        )
        self._kv: list[tuple[Any, Any]] = []
        self._first: Any = None
        if self.prefix_ids:
            with torch.no_grad():
                out = lm(input_ids=torch.tensor([self.prefix_ids]), use_cache=True)
            cache = returned_cache(out)
            self._kv = [(layer.keys, layer.values) for layer in cache.layers]
            self._first = out.logits[0, -1].float()

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def logits(self, rows: Sequence[list[int]]) -> list[Any]:
        """For each row of token ids, ``(len(row), vocab)`` float logits: entry ``t`` predicts
        ``row[t]`` from the prefix and ``row[:t]`` (entry 0 is NaN when there is no prefix)."""
        import torch
        from transformers import DynamicCache

        ids, mask = pad(rows)
        width = ids.shape[1]
        p = len(self.prefix_ids)
        kwargs: dict[str, Any] = {}
        if p:
            n = len(rows)
            cache = DynamicCache(
                ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self._kv]
            )
            kwargs = {**cache_argument(self.lm, cache), "use_cache": True}
            mask = torch.cat([torch.ones((n, p), dtype=torch.long), mask], dim=1)
        positions = p + torch.arange(width)[None].expand(len(rows), -1)
        logits = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs).logits.float()
        first = self._first if p else torch.full_like(logits[0, 0], float("nan"))
        return [torch.cat([first[None], logits[i, : len(r) - 1]]) for i, r in enumerate(rows)]

    def loglikelihood(self, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> list[float]:
        """The summed log-probability of each continuation after the prefix and its context."""
        import torch

        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                chunk = [(self.encode(c), self.encode(x)) for c, x in pairs[start : start + batch_size]]
                for (context, target), logits in zip(
                    chunk, self.logits([c + t for c, t in chunk]), strict=True
                ):
                    logp = torch.log_softmax(logits[len(context) :], dim=-1)
                    scores.append(float(logp.gather(1, torch.tensor(target)[:, None]).sum()))
        return scores

    def continuations(
        self, items: Sequence[tuple[str, Sequence[str]]], batch_size: int = 8
    ) -> list[list[tuple[float, int]]]:
        """Each continuation's summed log-probability and scored-token count after the prefix and
        its context, the context computed once for all of its continuations.

        A continuation's first token is scored only when something (prefix or context) precedes
        it. Items are grouped so a forward pass holds at most ``batch_size`` continuation rows
        (an item with more goes alone), the rows :meth:`loglikelihood` holds; the scores equal its.

        Args:
            items: ``(context, continuations)`` pairs.
            batch_size: most continuation rows per forward pass.
        """
        import torch

        encoded = [(self.encode(c), [self.encode(x) for x in xs]) for c, xs in items]
        scores: list[list[tuple[float, int]]] = []
        with torch.no_grad():
            for group in _groups([len(xs) for _, xs in encoded], batch_size):
                scores += self._shared([encoded[i] for i in group])
        return scores

    def _shared(self, chunk: Sequence[tuple[list[int], list[list[int]]]]) -> list[list[tuple[float, int]]]:
        """:meth:`continuations` of one group: contexts left-padded in one pass after the prefix's
        cache, then every continuation in one pass after its own context's cache."""
        import torch

        p, n = len(self.prefix_ids), len(chunk)
        contexts = [c for c, _ in chunk]
        width = max(map(len, contexts))
        kv = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self._kv]
        context_mask = torch.zeros((n, width), dtype=torch.long)
        last: list[Any] = [self._first if p else None] * n
        if width:
            ids = torch.zeros((n, width), dtype=torch.long)
            for i, c in enumerate(contexts):
                if c:
                    ids[i, width - len(c) :], context_mask[i, width - len(c) :] = torch.tensor(c), 1
            positions = p + (context_mask.cumsum(dim=1) - 1).clamp(min=0)
            mask = torch.cat([torch.ones((n, p), dtype=torch.long), context_mask], dim=1)
            out = self.lm(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,  # only the context's last position predicts a response token
                **self._cache(kv),
            )
            kv = [(layer.keys, layer.values) for layer in returned_cache(out).layers]
            last = [out.logits[i, -1].float() if c else last[i] for i, c in enumerate(contexts)]
        rows = [(i, x) for i, (_, xs) in enumerate(chunk) for x in xs if x]
        results: list[tuple[float, int]] = []
        if rows:
            owner = torch.tensor([i for i, _ in rows])
            span = max(len(x) for _, x in rows)
            ids = torch.zeros((len(rows), span), dtype=torch.long)
            row_mask = torch.zeros_like(ids)
            for r, (_, x) in enumerate(rows):
                ids[r, : len(x)], row_mask[r, : len(x)] = torch.tensor(x), 1
            seen = torch.cat([torch.ones((len(rows), p), dtype=torch.long), context_mask[owner]], dim=1)
            positions = p + context_mask.sum(dim=1)[owner, None] + torch.arange(span)[None]
            cache = self._cache([(k[owner], v[owner]) for k, v in kv])
            logits = self.lm(
                input_ids=ids,
                attention_mask=torch.cat([seen, row_mask], dim=1),
                position_ids=positions,
                use_cache=bool(cache),
                **cache,
            ).logits.float()
            for r, (i, x) in enumerate(rows):
                before = logits[r, : len(x) - 1]
                if last[i] is not None:
                    before = torch.cat([last[i][None], before])
                targets = torch.tensor(x[len(x) - len(before) :])
                logp = torch.log_softmax(before, dim=-1).gather(1, targets[:, None])
                results.append((float(logp.sum()), len(targets)))
        ordered = iter(results)
        return [[next(ordered) if x else (0.0, 0) for x in xs] for _, xs in chunk]

    def _cache(self, kv: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
        """The keyword arguments that hand ``kv`` to the model as its cache (none when empty)."""
        from transformers import DynamicCache

        return cache_argument(self.lm, DynamicCache(ddp_cache_data=list(kv))) if kv else {}


def _groups(sizes: Sequence[int], most: int) -> list[list[int]]:
    """Consecutive indices grouped so each group's ``sizes`` add up to at most ``most`` (or one index)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not groups or total + size > most:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups
