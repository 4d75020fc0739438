"""The objectives against their closed forms, the registry, and the binary PMP transform."""

from __future__ import annotations

import math
from typing import Any

import pytest

from alignlab.errors import UnknownNameError
from alignlab.prefs.data import Ranking, pair
from alignlab.prefs.objectives import OBJECTIVES, binary_pmp, ranked_pmp


def _batch(make_pm: Any, rankings: list[Ranking]) -> Any:
    return make_pm().batch(rankings)


def test_losses_match_their_closed_forms(make_pm: Any) -> None:
    import torch

    from alignlab.prefs.model import Output

    rankings = [pair("c", " a", " b"), Ranking("d", (" x", " y", " z"), (2.0, 1.0, 1.0))]
    batch = _batch(make_pm, rankings)
    scores = torch.tensor([1.0, -1.0, 0.5, 0.0, 2.0])
    out = Output(
        scores,
        logprob_sum=torch.tensor([-2.0, -9.0, -3.0, -9.0, -9.0]),
        token_count=torch.tensor([2, 1, 4, 1, 1]),
    )
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    ranked = -(math.log(sig(2.0)) + math.log(sig(0.5)) + math.log(sig(-1.5))) / 3
    assert float(OBJECTIVES.get("ranked").loss(out, batch)) == pytest.approx(ranked, rel=1e-6)
    bce = [
        -math.log(sig(1.0)),
        -math.log(1 - sig(-1.0)),
        -math.log(sig(0.5)),
        -math.log(1 - sig(0.0)),
        -math.log(1 - sig(2.0)),
    ]
    assert float(OBJECTIVES.get("binary").loss(out, batch)) == pytest.approx(sum(bce) / 5, rel=1e-6)
    assert float(OBJECTIVES.get("imitation").loss(out, batch)) == pytest.approx(5.0 / 6.0, rel=1e-6)


def test_objectives_are_swappable_by_name() -> None:
    assert OBJECTIVES.names() == ["binary", "imitation", "ranked"]
    assert OBJECTIVES.get("imitation").likelihood and OBJECTIVES.get("imitation").score_with == "likelihood"
    with pytest.raises(UnknownNameError, match="ranked"):
        OBJECTIVES.get("rankd")


def test_binary_pmp_labels_each_side_of_a_pair() -> None:
    (good_a, bad_b) = binary_pmp([pair("ctx", " A", " B", group="g")])
    assert good_a.responses == (" GOOD: A", " BAD: A") and good_a.scores == (1.0, 0.0)
    assert bad_b.responses == (" BAD: B", " GOOD: B") and bad_b.scores == (1.0, 0.0)
    assert good_a.context == bad_b.context == "ctx" and good_a.group == "g"
    three = binary_pmp([Ranking("c", ("A", "B", "C"), (3.0, 2.0, 1.0))])
    assert [r.responses for r in three] == [
        ("GOOD: A", "BAD: A"),
        ("BAD: B", "GOOD: B"),
        ("BAD: C", "GOOD: C"),
        ("GOOD: B", "BAD: B"),
    ]
    assert ranked_pmp([pair("c", "a", "b")]) == [pair("c", "a", "b")]
