"""Rankings to tensors: tokenising, counted truncation, and shared-context batches.

Every response is followed by an explicit end-of-context token, where the preference
model reads its score. A batch holds each ranking's context once (left-padded) and its
responses as rows of their own that refer back to the context row: the model computes the
context once and attends to its cached keys and values from every response
(shared-context batching). With ``shared=False`` each row carries its whole
context + response instead, padded on either side, which is how the scores are checked to
be independent of batching and padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from alignlab.prefs.data import Ranking

if TYPE_CHECKING:
    import torch

PaddingSide = Literal["left", "right"]


@dataclass
class Truncation:
    """How many sequences did not fit and were cut: never silent.

    Attributes:
        rankings: rankings encoded.
        contexts_cut: rankings whose context lost tokens (from its start, keeping the latest turns).
        responses_cut: responses that lost tokens from their end (only when a response alone
            would leave less than a quarter of the budget to its context).
    """

    rankings: int = 0
    contexts_cut: int = 0
    responses_cut: int = 0

    def summary(self) -> str:
        return (
            f"truncation: {self.contexts_cut} of {self.rankings} contexts cut from the left, "
            f"{self.responses_cut} responses cut from the end"
        )


@dataclass(frozen=True)
class Encoded:
    """One ranking as token ids: the context, and each response ending with the end token."""

    context: list[int]
    responses: list[list[int]]
    ranking: Ranking


class Encoder:
    """Tokenises rankings to fit ``max_tokens`` per context + response, keeping responses whole.

    Args:
        tokenizer: a transformers tokenizer.
        end_id: the end-of-context token appended to every response.
        max_tokens: most tokens of context + response + end token.
    """

    def __init__(self, tokenizer: Any, end_id: int, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.end_id = end_id
        self.max_tokens = max_tokens
        self.truncation = Truncation()

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, ranking: Ranking) -> Encoded:
        """Token ids of ``ranking``, cut to fit and counted in :attr:`truncation`."""
        context = self._ids(ranking.context)
        responses = [self._ids(r) for r in ranking.responses]
        # The context keeps at least a quarter of the budget; responses get the rest whole if they fit.
        room = self.max_tokens - 1 - min(len(context), self.max_tokens // 4)
        self.truncation.rankings += 1
        for i, response in enumerate(responses):
            if len(response) > room:
                responses[i] = response[:room]
                self.truncation.responses_cut += 1
        keep = self.max_tokens - 1 - max(len(r) for r in responses)
        if len(context) > keep:
            context = context[len(context) - keep :] if keep > 0 else []
            self.truncation.contexts_cut += 1
        return Encoded(context, [[*r, self.end_id] for r in responses], ranking)


@dataclass
class Batch:
    """Tensors for a group of rankings; responses are flattened into rows.

    Attributes:
        context_ids, context_mask: ``(B, Lc)`` contexts, left-padded (``Lc == 0`` when unshared).
        ids, mask: ``(N, L)`` one row per response (with its context when unshared).
        owner: ``(N,)`` the context row of each response row.
        end_index: ``(N,)`` where each row's end-of-context token sits.
        target: ``(N, L)`` the response tokens (end token excluded), for likelihood objectives.
        pairs: ``(P, 2)`` row indices ``(winner, loser)`` of every strict preference.
        labelled, labels: rows with a good (1) / bad (0) label: best-scored responses are good.
        best: rows of the best-scored responses, the imitation targets.
        spans: ``(first row, row count)`` of each ranking, in input order.
    """

    context_ids: torch.Tensor
    context_mask: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    owner: torch.Tensor
    end_index: torch.Tensor
    target: torch.Tensor
    pairs: torch.Tensor
    labelled: torch.Tensor
    labels: torch.Tensor
    best: torch.Tensor
    spans: list[tuple[int, int]]

    def to(self, device: Any) -> Batch:
        """The same batch on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if name != "spans":
                moved[name] = value.to(device)
        return Batch(**moved)


def collate(
    encoded: Sequence[Encoded],
    pad_id: int,
    *,
    shared: bool = True,
    padding_side: PaddingSide = "right",
) -> Batch:
    """Build a :class:`Batch`.

    Args:
        encoded: the rankings, tokenised.
        pad_id: the id that fills padding (masked out; it never reaches a score).
        shared: hold each context once (True) or repeat it in every response row.
        padding_side: where response rows are padded.
    """
    import torch

    rows: list[list[int]] = []
    targets: list[list[bool]] = []
    owner: list[int] = []
    spans: list[tuple[int, int]] = []
    pairs: list[tuple[int, int]] = []
    labelled: list[tuple[int, float]] = []
    best: list[int] = []
    for b, item in enumerate(encoded):
        first = len(rows)
        spans.append((first, len(item.responses)))
        prefix = [] if shared else item.context
        # A response's first token is a target only if some context precedes it to predict it from.
        lead = bool(item.context)
        for response in item.responses:
            rows.append(prefix + response)
            marks = [*[lead, *[True] * (len(response) - 2)][: len(response) - 1], False]
            targets.append([False] * len(prefix) + marks)
            owner.append(b if shared else len(rows) - 1)
        ranking = item.ranking
        pairs += [(first + w, first + lose) for w, lose in ranking.pairs()]
        top = set(ranking.best())
        labelled += [(first + i, float(i in top)) for i in range(len(item.responses))]
        best += [first + i for i in sorted(top)]
    contexts = [e.context for e in encoded] if shared else []
    context_ids, context_mask = _pad(contexts, pad_id, "left")
    ids, mask = _pad(rows, pad_id, padding_side)
    target, _ = _pad([[int(t) for t in row] for row in targets], 0, padding_side)
    width = ids.shape[1]
    ends = [len(r) - 1 if padding_side == "right" else width - 1 for r in rows]
    return Batch(
        context_ids=context_ids,
        context_mask=context_mask,
        ids=ids,
        mask=mask,
        owner=torch.tensor(owner, dtype=torch.long),
        end_index=torch.tensor(ends, dtype=torch.long),
        target=target.bool(),
        pairs=torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
        labelled=torch.tensor([i for i, _ in labelled], dtype=torch.long),
        labels=torch.tensor([y for _, y in labelled], dtype=torch.float32),
        best=torch.tensor(best, dtype=torch.long),
        spans=spans,
    )


def _pad(rows: Sequence[list[int]], value: int, side: PaddingSide) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
