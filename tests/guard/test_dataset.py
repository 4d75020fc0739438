"""The data pipeline with a scripted policy and a small data folder built in the test."""

from __future__ import annotations

import json
from pathlib import Path

from guard_data import data_folder

from alignlab.guard.constitution import load_constitution
from alignlab.guard.dataset import build, examples, split_of
from alignlab.guard.recipe import Recipe
from alignlab.guard.seeds import Seed, dataset_seeds
from alignlab.models.scripted import ScriptedBackend


def test_seeds_respect_the_data_discipline(tmp_path: Path) -> None:
    seeds = list(dataset_seeds(data_folder(tmp_path), max_per_source=2))
    texts = {s.text for s in seeds}
    assert "fake news please" not in texts  # out of the constitution's scope
    assert any(s.text == "what is it" and s.label == 0 for s in seeds)  # non-compliance is not harm
    assert sum(s.source == "cyberseceval:mitre_frr" for s in seeds) <= 2
    assert all(s.label == 1 for s in seeds if s.source in ("coconot:harmful", "cyberseceval:interpreter"))


def test_examples_split_by_hash_and_hold_out_families() -> None:
    recipe = Recipe(test_fraction=0.5, held_out_per_seed=2)
    seeds = [Seed(f"request number {i}", i % 2, "c", "s") for i in range(40)]
    made = list(examples(recipe, seeds))
    assert {e["split"] for e in made} == {"train", "test"}
    for e in made:
        assert e["split"] == split_of(e["request"], 0.5)
        if e["split"] == "train":
            assert e["augmentation"] in ("plain", *recipe.train_families)
        else:
            assert e["augmentation"] in ("plain", *recipe.held_out_families)
    assert made == list(examples(recipe, seeds))  # deterministic, ids included


def test_build_resumes_without_duplicates_and_writes_a_card(tmp_path: Path) -> None:
    recipe = Recipe(max_per_source=2, synthetic_per_category=0, response_tokens=4)
    policy = ScriptedBackend("I cannot help with that request at all")
    out = tmp_path / "out"
    path = build(
        recipe, load_constitution(), out, policy=policy, root=data_folder(tmp_path / "data"), generator=None
    )
    first = path.read_text().splitlines()
    lines = first[: len(first) // 2]
    path.write_text("\n".join(lines) + "\n" + first[len(first) // 2][:10])  # a crash mid-line
    build(
        recipe, load_constitution(), out, policy=policy, root=data_folder(tmp_path / "data"), generator=None
    )
    again = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(again) == len(first) and len({r["id"] for r in again}) == len(first)
    assert all(r["response"] == "I cannot help with" for r in again)
    card = json.loads((out / "card.json").read_text())
    assert card["total"] == len(first) and set(card["by_split"]) <= {"train", "test"}
