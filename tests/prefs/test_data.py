"""Preference data: HH transcripts, hhh task files, Stack Exchange dumps, JSONL rankings, splits."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from alignlab.errors import ConfigError, DataError
from alignlab.prefs.data import (
    Ranking,
    first_human_turn,
    load_hh,
    load_hhh,
    load_jsonl,
    load_source,
    split,
    split_of,
    split_transcript,
)
from alignlab.prefs.stackexchange import answer_score, load_stackexchange


def test_split_transcript_cuts_at_the_last_assistant_turn() -> None:
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: like this"
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: no"
    context, good, bad = split_transcript(chosen, rejected)
    assert context == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:"
    assert (good, bad) == (" like this", " no")
    assert first_human_turn(context) == "hi"


def test_malformed_hh_records_are_reported_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        {"chosen": "\n\nHuman: a\n\nAssistant: yes", "rejected": "\n\nHuman: a\n\nAssistant: no"},
        {"chosen": "\n\nHuman: no assistant turn", "rejected": "\n\nHuman: no assistant turn"},
        {"chosen": "\n\nHuman: b\n\nAssistant: same", "rejected": "\n\nHuman: b\n\nAssistant: same"},
        {"chosen": 3},
    ]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)
    loaded = load_hh(path)
    assert [r.responses for r in loaded.rankings] == [(" yes", " no")]
    assert [(p.line, p.path) for p in loaded.problems] == [(2, str(path)), (3, str(path)), (4, str(path))]
    assert "Assistant:" in loaded.problems[0].reason and "identical" in loaded.problems[1].reason
    assert "skipped 3" in loaded.summary() and f"{path}:2" in loaded.summary()


def test_jsonl_k_way_rankings_with_ties_give_only_strict_pairs(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    records = [
        {"context": "q", "responses": ["a", "b", "c"], "scores": [2, 1, 1]},
        {"context": "q2", "chosen": "x", "rejected": "y", "subset": "s"},
        {"context": "q3", "responses": ["a", "b"], "scores": [1, 1]},
        {"context": "q4", "responses": ["a", "b"], "scores": ["high", 1]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    loaded = load_jsonl(path)
    assert [r.pairs() for r in loaded.rankings] == [[(0, 1), (0, 2)], [(0, 1)]]
    assert loaded.rankings[0].best() == [0] and loaded.rankings[1].subset == "s"
    assert [p.line for p in loaded.problems] == [3, 4]
    assert "tie" in loaded.problems[0].reason


def test_hhh_pairs_are_grouped_back_into_rankings(tmp_path: Path) -> None:
    examples = [
        {"input": "q", "target_scores": {"best": 1, "mid": 0}},
        {"input": "q", "target_scores": {"best": 1, "worst": 0}},
        {"input": "q", "target_scores": {"mid": 1, "worst": 0}},
        {"input": "other", "target_scores": {"yes": 1, "no": 0}},
    ]
    (tmp_path / "harmless").mkdir()
    (tmp_path / "harmless" / "task.json").write_text(json.dumps({"examples": examples}))
    loaded = load_hhh(tmp_path)
    first = loaded.rankings[0]
    assert first.context == "\n\nHuman: q\n\nAssistant:" and first.subset == "harmless"
    assert dict(zip(first.responses, first.scores, strict=True)) == {" best": 2.0, " mid": 1.0, " worst": 0.0}
    assert len(first.pairs()) == 3 and len(loaded.rankings[1].pairs()) == 1


def test_stackexchange_answers_are_scored_by_the_paper_rule(tmp_path: Path) -> None:
    assert [answer_score(v, False) for v in (-3, 0, 1, 2, 3, 7)] == [-1, 0, 1, 2, 2, 3]
    assert answer_score(3, True) == 3
    xml = """<?xml version="1.0" encoding="utf-8"?><posts>
      <row Id="1" PostTypeId="1" AcceptedAnswerId="3" Score="5" Title="Why &amp; how?"
           Body="&lt;p&gt;Q body&lt;/p&gt;" />
      <row Id="2" PostTypeId="2" ParentId="1" Score="7" Body="&lt;p&gt;top&lt;/p&gt;" />
      <row Id="3" PostTypeId="2" ParentId="1" Score="1" Body="accepted" />
      <row Id="4" PostTypeId="2" ParentId="1" Score="-2" Body="bad" />
      <row Id="5" PostTypeId="1" Score="1" Title="lonely" Body="one answer only" />
      <row Id="6" PostTypeId="2" ParentId="5" Score="1" Body="only" />
    </posts>"""
    path = tmp_path / "site.Posts.xml"
    path.write_text(xml)
    (ranking,) = load_stackexchange(path).rankings
    assert ranking.context == "\n\nHuman: Why & how?\n\nQ body\n\nAssistant:"
    assert ranking.responses == (" top", " accepted", " bad") and ranking.scores == (3.0, 2.0, -1.0)
    (tmp_path / "broken.Posts.xml").write_text("<posts><row")
    with pytest.raises(DataError):
        load_stackexchange(tmp_path / "broken.Posts.xml")


def test_splits_are_deterministic_and_keep_groups_together() -> None:
    rankings = [Ranking(f"c{i}", ("a", "b"), (1.0, 0.0), group=f"g{i % 50}") for i in range(400)]
    test = split(rankings, "test", 0.2)
    assert test == split(rankings, "test", 0.2)
    assert 40 < len(test) < 130
    test_groups = {r.group for r in test}
    assert not test_groups & {r.group for r in split(rankings, "train", 0.2)}
    assert split_of("same group", 0.5) == split_of("same group", 0.5)
    with pytest.raises(ConfigError):
        split_of("g", 1.5)


def test_unknown_source_kind_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stackexchange"):
        load_source("stackexchang:/x", tmp_path)
    with pytest.raises(DataError, match="ALIGNLAB_DATA"):
        load_source("hh-harmless", tmp_path)


def test_real_data_loads_with_counted_skips(shared_data: Path) -> None:
    hh = load_source("hh-harmless", shared_data)
    assert len(hh.rankings) + len(hh.problems) == 2312 and len(hh.problems) == 9
    hhh = load_source("hhh", shared_data)
    assert sum(len(r.pairs()) for r in hhh.rankings) == 221
    assert {r.subset for r in hhh.rankings} == {"harmless", "helpful", "honest", "other"}
    se = load_source("stackexchange", shared_data)
    assert 3000 < sum(len(r.pairs()) for r in se.rankings) < 3400
