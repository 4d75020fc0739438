"""The three preference objectives of Askell et al. (2021), side by side, and the PMP data transforms.

* **ranked**: ``-log sigmoid(r_good - r_bad)`` over every strictly ordered pair of a ranking
  (Bradley-Terry; ties give no pair);
* **binary**: each response judged on its own, good (best-scored) or bad, by a logistic loss
  on its score;
* **imitation**: the language-model loss on the preferred responses; the model then scores
  a response by its mean token log-probability.

Each objective is a function ``(Output, Batch) -> loss`` registered by name in
:data:`OBJECTIVES`. For preference-model pre-training (PMP), :func:`binary_pmp` turns each
pair A > B into the two pairs ``GOOD: A > BAD: A`` and ``BAD: B > GOOD: B``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from alignlab.core.registry import Registry
from alignlab.prefs.data import Ranking

if TYPE_CHECKING:
    import torch

    from alignlab.prefs.batch import Batch
    from alignlab.prefs.model import Output, ScoreWith


class Loss(Protocol):
    def __call__(self, out: Output, batch: Batch) -> torch.Tensor: ...


@dataclass(frozen=True)
class Objective:
    """A named loss, whether it needs the response likelihoods, and how its model scores."""

    name: str
    loss: Loss
    likelihood: bool
    score_with: ScoreWith


def ranked_loss(out: Output, batch: Batch) -> torch.Tensor:
    import torch.nn.functional as F

    winner, loser = batch.pairs[:, 0], batch.pairs[:, 1]
    return -F.logsigmoid(out.scores[winner] - out.scores[loser]).mean()


def binary_loss(out: Output, batch: Batch) -> torch.Tensor:
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(out.scores[batch.labelled], batch.labels)


def imitation_loss(out: Output, batch: Batch) -> torch.Tensor:
    assert out.logprob_sum is not None and out.token_count is not None, "imitation needs likelihood=True"
    return -out.logprob_sum[batch.best].sum() / out.token_count[batch.best].sum().clamp(min=1)


OBJECTIVES: Registry[Objective] = Registry("preference objective")
OBJECTIVES.register("ranked", Objective("ranked", ranked_loss, likelihood=False, score_with="value"))
OBJECTIVES.register("binary", Objective("binary", binary_loss, likelihood=False, score_with="value"))
OBJECTIVES.register(
    "imitation", Objective("imitation", imitation_loss, likelihood=True, score_with="likelihood")
)


def binary_pmp(rankings: Sequence[Ranking], good: str = "GOOD:", bad: str = "BAD:") -> list[Ranking]:
    """Binary PMP data: each pair A > B becomes ``GOOD: A > BAD: A`` and ``BAD: B > GOOD: B``.

    The labels go before the response (after its leading space), so the model must judge
    each response on its own rather than compare two. A K-way ranking contributes every one
    of its pairs; a response that wins one pair and loses another contributes both, once each.
    """
    out: list[Ranking] = []
    for ranking in rankings:
        seen: set[tuple[int, bool]] = set()
        for winner, loser in ranking.pairs():
            for index, won in ((winner, True), (loser, False)):
                if (index, won) in seen:
                    continue
                seen.add((index, won))
                text = ranking.responses[index]
                lead = " " if text.startswith(" ") else ""
                labelled = (f"{lead}{good} {text.lstrip(' ')}", f"{lead}{bad} {text.lstrip(' ')}")
                right, wrong = labelled if won else labelled[::-1]
                out.append(
                    Ranking(
                        ranking.context,
                        (right, wrong),
                        (1.0, 0.0),
                        ranking.group,
                        ranking.source,
                        ranking.subset,
                    )
                )
    return out


def ranked_pmp(rankings: Sequence[Ranking]) -> list[Ranking]:
    """Ranked PMP data: the rankings as they are (every pair trained with the ranked loss)."""
    return list(rankings)
