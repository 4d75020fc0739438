"""The HHH evaluation, the shipped prompt and the prefixed language model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import DataError
from alignlab.prefs.data import Ranking, pair
from alignlab.prefs.hhh import evaluate_lm, report, wilson
from alignlab.prefs.prompt import PrefixedLM, load_prompt, parse_prompt


def test_wilson_interval_matches_the_closed_form() -> None:
    low, high = wilson(70, 100)
    z, p, n = 1.959964, 0.7, 100
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert low == pytest.approx((centre - half) / (1 + z * z / n)) and low == pytest.approx(0.6042, abs=1e-4)
    assert high == pytest.approx((centre + half) / (1 + z * z / n)) and high == pytest.approx(
        0.7811, abs=1e-4
    )
    assert wilson(0, 0) == (0.0, 1.0) and wilson(10, 10)[1] == pytest.approx(1.0)


def test_report_counts_per_subset_ties_as_wrong_and_the_longer_baseline() -> None:
    rankings = [
        Ranking("c", (" long answer", " no"), (1.0, 0.0), subset="helpful"),
        Ranking("c", (" ok", " a much longer one"), (1.0, 0.0), subset="harmless"),
        Ranking("c", (" best", " mid", " worst"), (2.0, 1.0, 0.0), subset="harmless"),
    ]
    result = report("t", "s", rankings, [[1.0, 0.0], [0.0, 0.0], [3.0, 2.0, 2.5]])
    rows = {r.subset: r for r in result.rows}
    assert [r.subset for r in result.rows] == ["harmless", "helpful", "all"]
    assert (rows["harmless"].n, rows["harmless"].correct) == (4, 2.0)  # the tie and mid < worst count wrong
    assert rows["helpful"].accuracy == 1.0 and rows["all"].n == 5
    assert rows["helpful"].longer_wins == 1.0 and rows["harmless"].longer_wins == 0.25
    assert "harmless" in result.table() and result.to_dict()["rows"][2]["subset"] == "all"
    with pytest.raises(ValueError):
        report("t", "s", rankings, [[1.0]])


def test_the_shipped_prompt_has_14_dialogues_in_the_papers_format() -> None:
    text = load_prompt()
    assert text.count("\n\n-----\n\n") == 14 and text.endswith("-----")
    assert text.count("Human: ") >= 14 and text.count("Assistant: ") >= 14
    assert "\n\nHuman: " in text and "Anthropic" not in text


def test_a_prompt_file_overrides_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Be kind.\n\n-----")
    assert load_prompt(tmp_path / "p.txt") == "Be kind.\n\n-----"
    dialogue = [{"role": "human", "text": "hi"}, {"role": "assistant", "text": "hello"}]
    (tmp_path / "p.json").write_text(json.dumps({"preamble": "Intro", "dialogues": [dialogue]}))
    assert load_prompt(tmp_path / "p.json") == "Intro\n\n-----\n\nHuman: hi\n\nAssistant: hello\n\n-----"
    with pytest.raises(DataError, match="alternate"):
        parse_prompt({"preamble": "x", "dialogues": [[{"role": "assistant", "text": "hi"}]]})
    with pytest.raises(DataError):
        load_prompt(tmp_path / "missing.txt")


def test_prefixed_lm_equals_scoring_the_whole_text(tiny_backend: Any) -> None:
    import torch

    lm, tokenizer = tiny_backend.model, tiny_backend.tokenizer
    pairs = [
        ("\n\nHuman: hi\n\nAssistant:", " paris is the capital"),
        ("\n\nHuman: what\n\nAssistant:", " the dog"),
    ]
    for prefix in ("", "hello world the quick brown fox"):
        scorer = PrefixedLM(lm, tokenizer, prefix)
        batched, single = scorer.loglikelihood(pairs, batch_size=2), scorer.loglikelihood(pairs, batch_size=1)
        for (context, continuation), a, b in zip(pairs, batched, single, strict=True):
            head = scorer.prefix_ids + scorer.encode(context)
            tail = scorer.encode(continuation)
            with torch.no_grad():
                logp = lm(input_ids=torch.tensor([head + tail])).logits[0].log_softmax(-1)
            expected = sum(float(logp[len(head) - 1 + i, t]) for i, t in enumerate(tail))
            assert a == pytest.approx(expected, abs=1e-4) and b == pytest.approx(expected, abs=1e-4)


def test_language_model_evaluation_with_and_without_a_prompt(tiny_backend: Any) -> None:
    rankings = [
        pair("\n\nHuman: capital?\n\nAssistant:", " paris is the capital.", " zq xv", subset="helpful")
    ]
    plain = evaluate_lm(tiny_backend.model, tiny_backend.tokenizer, rankings, "t")
    prompted = evaluate_lm(tiny_backend.model, tiny_backend.tokenizer, rankings, "t", prompt="hello world")
    assert plain.scorer.endswith("no prompt") and prompted.scorer.endswith("with HHH prompt")
    assert plain.overall().n == prompted.overall().n == 1


def test_shared_contexts_score_as_the_unshared_path(tiny_backend: Any) -> None:
    """Each context once for all its continuations, left-padded beside longer and empty contexts,
    with and without a prefix, in groups of any size: the unshared scores to 1e-4."""
    lm, tokenizer = tiny_backend.model, tiny_backend.tokenizer
    items = [
        (
            "\n\nHuman: what is the capital of france? tell me\n\nAssistant:",
            [" paris", " the lazy dog jumps"],
        ),
        ("\n\nHuman: hi\n\nAssistant:", [" hello world", " x", " def add(a, b): return a + b"]),
        ("", [" the quick brown fox", " ok"]),
    ]
    for prefix in ("", "hello world the quick brown fox"):
        scorer = PrefixedLM(lm, tokenizer, prefix)
        flat = [(c, x) for c, xs in items for x in xs]
        unshared = scorer.loglikelihood(flat, batch_size=1)
        for batch_size in (1, 2, 3, 16):
            shared = [s for group in scorer.continuations(items, batch_size) for s in group]
            assert [n for _, n in shared] == [len(scorer.encode(x)) - (not prefix and not c) for c, x in flat]
            for (context, x), (total, _), expected in zip(flat, shared, unshared, strict=True):
                if not prefix and not context:  # nothing predicts the first token: the rest count
                    expected = _logprob_after_first(lm, scorer.encode(x))
                assert total == pytest.approx(expected, abs=1e-4)


def _logprob_after_first(lm: Any, ids: list[int]) -> float:
    import torch

    with torch.no_grad():
        logp = lm(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
    return sum(float(logp[i - 1, t]) for i, t in enumerate(ids) if i)
