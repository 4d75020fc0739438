"""The HHH evaluation, the shipped prompt and the prefixed language model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import DataError, UnknownNameError
from alignlab.prefs.data import ASSISTANT, Ranking, pair
from alignlab.prefs.hhh import (
    EvalConfig,
    evaluate_lm,
    evaluate_lm_rules,
    lm_scores,
    lm_scores_unshared,
    report,
    run_eval,
)
from alignlab.prefs.likelihood import DEFAULT_RULE, RULE_NAMES, RULES, Logprob, apply_rule, response_logprobs
from alignlab.prefs.prompt import PrefixedLM, load_prompt, parse_prompt


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
    assert plain.scorer == "language model, no prompt, sum"
    assert prompted.scorer == "language model, with HHH prompt, sum"
    assert plain.details["scoring"] == "sum" and prompted.details["prompt"] is True
    assert plain.overall().n == prompted.overall().n == 1


def test_scoring_rules_read_the_same_logprobs_their_own_way() -> None:
    short, long = Logprob(-6.0, 2, 4, neutral=-5.0), Logprob(-9.0, 6, 24, neutral=-12.0)
    scores = {name: apply_rule(name, [[long, short]])[0] for name in RULE_NAMES}
    assert scores["sum"] == [-9.0, -6.0]  # the short response is likelier whole
    assert scores["mean-token"] == [-1.5, -3.0] and scores["mean-char"] == [-0.375, -1.5]
    assert scores["pmi"] == [3.0, -1.0]  # the context lifts the long one, not the short one
    assert DEFAULT_RULE == "sum" and RULES.names() == sorted(RULE_NAMES)
    with pytest.raises(ValueError, match="neutral"):
        apply_rule("pmi", [[Logprob(-1.0, 1, 1)]])
    with pytest.raises(UnknownNameError, match="mean-token"):
        apply_rule("mean-tokens", [[short]])


def test_response_logprobs_equal_the_unshared_sums_and_the_neutral_pass(tiny_backend: Any) -> None:
    lm, tokenizer = tiny_backend.model, tiny_backend.tokenizer
    rankings = [
        pair("\n\nHuman: capital of france?\n\nAssistant:", " paris is the capital.", " zq xv"),
        Ranking("\n\nHuman: hi\n\nAssistant:", (" hello", " the dog", " x y z"), (2.0, 1.0, 0.0)),
    ]
    for prompt in ("", "hello world the quick brown fox"):
        scorer = PrefixedLM(lm, tokenizer, prompt)
        logprobs = response_logprobs(scorer, rankings, batch_size=2, neutral=True)
        unshared = lm_scores_unshared(lm, tokenizer, rankings, prompt, batch_size=3)
        for ranking, group, expected in zip(rankings, logprobs, unshared, strict=True):
            neutral = scorer.loglikelihood([(ASSISTANT, x) for x in ranking.responses])
            for response, lp, total, base in zip(ranking.responses, group, expected, neutral, strict=True):
                assert lp.total == pytest.approx(total, abs=1e-4)
                assert lp.neutral == pytest.approx(base, abs=1e-4) and lp.neutral != lp.total
                assert (lp.tokens, lp.chars) == (len(scorer.encode(response)), len(response))
        scores = lm_scores(lm, tokenizer, rankings, prompt, 2, RULE_NAMES)
        assert scores["sum"] == [[lp.total for lp in group] for group in logprobs]
        assert scores["pmi"] == [[lp.total - (lp.neutral or 0.0) for lp in group] for group in logprobs]


def test_every_rule_gets_a_report_and_a_wrong_rule_fails_before_loading(tiny_backend: Any) -> None:
    rankings = [pair("\n\nHuman: capital?\n\nAssistant:", " paris is the capital.", " zq xv")]
    reports = evaluate_lm_rules(tiny_backend.model, tiny_backend.tokenizer, rankings, "t")
    assert [r.details["scoring"] for r in reports] == list(RULE_NAMES)
    assert [r.scorer for r in reports] == [f"language model, no prompt, {name}" for name in RULE_NAMES]
    with pytest.raises(UnknownNameError, match="Did you mean 'sum'"):
        run_eval(EvalConfig(model="no-such-model", scoring="summ"))


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
