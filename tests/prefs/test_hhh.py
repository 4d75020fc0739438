"""The HHH evaluation, the shipped prompt and the prefixed language model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import DataError
from alignlab.prefs.data import Ranking, pair
from alignlab.prefs.hhh import evaluate_lm, report
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
    assert plain.scorer.endswith("no prompt") and prompted.scorer.endswith("with HHH prompt")
    assert plain.overall().n == prompted.overall().n == 1
