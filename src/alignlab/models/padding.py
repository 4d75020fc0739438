"""Token rows of different lengths as one padded batch: ids and an attention mask.

Every path that batches token ids for a transformers model pads here, so a left-padded
prefill, a right-padded scoring pass and a preference batch agree on what padding means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

PaddingSide = Literal["left", "right"]


def pad(
    rows: Sequence[Sequence[int]], pad_id: int = 0, side: PaddingSide = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``: ``(len(rows), longest)`` long tensors, padding filled with ``pad_id``.

    Args:
        rows: token ids per row (an empty row is all padding; no rows gives width 0).
        pad_id: the id that fills padding; the mask is 0 there, so it is never attended to.
        side: where the padding goes: ``right`` (after the tokens) or ``left`` (before).
    """
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
