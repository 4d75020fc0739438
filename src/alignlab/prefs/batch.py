"""Rankings to tensors: tokenising, counted truncation, and three batch layouts.

Every response is followed by an explicit end-of-context token, where the preference
model reads its score. The layouts give the same scores (tested) at different cost:

* ``packed`` (the default): each ranking is one unit, its context once and then every
  response, and units are packed side by side into rows with no padding between them. An
  attention mask lets each response see its own context and itself, never a sibling or
  another unit; position ids restart per sequence. The context is computed once for all K
  responses and almost no padding is computed (see :func:`pack`).
* ``shared``: each context once (left-padded) in a context batch; responses are rows of their
  own that attend to their context's cached keys and values.
* ``rows``: each row carries its whole context + response, padded on either side, the way
  most trainers batch; it is how the others are checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from alignlab.models.padding import PaddingSide, pad
from alignlab.prefs.data import Ranking

if TYPE_CHECKING:
    import torch

Layout = Literal["packed", "shared", "rows"]
B = TypeVar("B", "Batch", "Packed")
LAYOUTS: tuple[Layout, ...] = ("packed", "shared", "rows")


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
        return _moved(self, device)


def _moved(batch: B, device: Any) -> B:
    """``batch`` with every tensor field on ``device`` (``spans`` is plain data)."""
    tensors = {f.name: getattr(batch, f.name).to(device) for f in fields(batch) if f.name != "spans"}
    return replace(batch, **tensors)


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
    for b, item in enumerate(encoded):
        prefix = [] if shared else item.context
        # A response's first token is a target only if some context precedes it to predict it from.
        lead = bool(item.context)
        for response in item.responses:
            rows.append(prefix + response)
            marks = [*[lead, *[True] * (len(response) - 2)][: len(response) - 1], False]
            targets.append([False] * len(prefix) + marks)
            owner.append(b if shared else len(rows) - 1)
    contexts = [e.context for e in encoded] if shared else []
    context_ids, context_mask = pad(contexts, pad_id, "left")
    ids, mask = pad(rows, pad_id, padding_side)
    target, _ = pad([[int(t) for t in row] for row in targets], 0, padding_side)
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
        **_labels(encoded),
    )


def _labels(encoded: Sequence[Encoded]) -> dict[str, Any]:
    """What the objectives read, over responses numbered in input order: pairs, labels, bests, spans."""
    import torch

    spans: list[tuple[int, int]] = []
    pairs: list[tuple[int, int]] = []
    labelled: list[tuple[int, float]] = []
    best: list[int] = []
    first = 0
    for item in encoded:
        ranking = item.ranking
        spans.append((first, len(item.responses)))
        pairs += [(first + w, first + lose) for w, lose in ranking.pairs()]
        top = set(ranking.best())
        labelled += [(first + i, float(i in top)) for i in range(len(item.responses))]
        best += [first + i for i in sorted(top)]
        first += len(item.responses)
    return {
        "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
        "labelled": torch.tensor([i for i, _ in labelled], dtype=torch.long),
        "labels": torch.tensor([y for _, y in labelled], dtype=torch.float32),
        "best": torch.tensor(best, dtype=torch.long),
        "spans": spans,
    }


@dataclass
class Packed:
    """Rankings packed into rows without padding between them; responses are numbered in input order.

    Attributes:
        ids, positions: ``(R, W)`` token ids and position ids (restarting for every sequence).
        allowed: ``(R, 1, W, W)`` which key each query may attend to (its own unit's context,
            its own response up to itself; a padding slot only to itself).
        end_at: ``(N,)`` flat index (into ``R * W``) of each response's end-of-context token.
        target_at, before_at, target_row: ``(T,)`` flat index of every response token that is
            a likelihood target, of the token that predicts it, and which response it belongs to.
        token_count: ``(N,)`` likelihood targets per response.
        pairs, labelled, labels, best, spans: as in :class:`Batch`.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    allowed: torch.Tensor
    end_at: torch.Tensor
    target_at: torch.Tensor
    before_at: torch.Tensor
    target_row: torch.Tensor
    token_count: torch.Tensor
    pairs: torch.Tensor
    labelled: torch.Tensor
    labels: torch.Tensor
    best: torch.Tensor
    spans: list[tuple[int, int]]

    def to(self, device: Any) -> Packed:
        """The same batch on ``device``."""
        return _moved(self, device)


def pack(encoded: Sequence[Encoded], pad_id: int) -> Packed:
    """Pack rankings into as few rows as fit, first-fit by decreasing length.

    The row width is the longest unit (a context plus all its responses), so attention costs
    rows x width^2 while the linear layers see only real tokens and the slack at row ends.
    """
    import torch

    units = [len(e.context) + sum(len(r) for r in e.responses) for e in encoded]
    width = max(units, default=0)
    rows = _first_fit(units, width)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    unit_of = torch.full((len(rows), width), -1, dtype=torch.long)
    branch = torch.zeros((len(rows), width), dtype=torch.long)  # 0 = context, i + 1 = response i
    labels = _labels(encoded)
    end_at, target_at, before_at, target_row, count = {}, [], [], [], {}
    for r, members in enumerate(rows):
        at = 0
        for u in members:
            item = encoded[u]
            c = len(item.context)
            ids[r, at : at + c] = torch.tensor(item.context, dtype=torch.long)
            positions[r, at : at + c] = torch.arange(c)
            unit_of[r, at : at + c] = u
            start = at + c
            for i, response in enumerate(item.responses):
                n, row_id = len(response), labels["spans"][u][0] + i
                span = slice(start, start + n)
                ids[r, span] = torch.tensor(response, dtype=torch.long)
                positions[r, span] = torch.arange(c, c + n)
                unit_of[r, span] = u
                branch[r, span] = i + 1
                end_at[row_id] = r * width + start + n - 1
                # Token j is predicted from token j - 1, the first from the context's last (if any).
                first = 0 if c else 1
                targets = list(range(first, n - 1))
                target_at += [r * width + start + j for j in targets]
                before_at += [r * width + (start + j - 1 if j else at + c - 1) for j in targets]
                target_row += [row_id] * len(targets)
                count[row_id] = len(targets)
                start += n
            at = start
    total = sum(len(e.responses) for e in encoded)
    return Packed(
        ids=ids,
        positions=positions,
        allowed=_allowed(unit_of, branch)[:, None],
        end_at=torch.tensor([end_at[i] for i in range(total)], dtype=torch.long),
        target_at=torch.tensor(target_at, dtype=torch.long),
        before_at=torch.tensor(before_at, dtype=torch.long),
        target_row=torch.tensor(target_row, dtype=torch.long),
        token_count=torch.tensor([count[i] for i in range(total)], dtype=torch.long),
        **labels,
    )


def _first_fit(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Indices of ``lengths`` in rows of ``width``: longest first, each into the first row with room."""
    rows: list[list[int]] = []
    room: list[int] = []
    for u in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((i for i, free in enumerate(room) if free >= lengths[u]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(u)
        room[row] -= lengths[u]
    return rows


def _allowed(unit_of: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``(R, W, W)``: a query sees earlier keys of its own unit that are context or its own response;
    a padding slot (unit -1) sees only itself, so no row of the softmax is empty."""
    import torch

    width = unit_of.shape[1]
    same_unit = (unit_of[:, :, None] == unit_of[:, None, :]) & (unit_of[:, :, None] >= 0)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    sees = (branch[:, None, :] == 0) | (branch[:, None, :] == branch[:, :, None])
    pad = torch.eye(width, dtype=torch.bool) & (unit_of[:, :, None] < 0)
    return (same_unit & causal & sees) | pad
