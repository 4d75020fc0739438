"""One command from a constitution to a labelled exchange dataset.

Seeds (constitution examples, training datasets, generator-written requests) are split by a
hash of their text, augmented (training families for the train split; every held-out
family for harmful test seeds), answered by the policy, and appended to ``exchanges.jsonl``
as they are made, so an interrupted run resumes without duplicates. ``card.json`` counts
examples per split, label, category, source and augmentation. Generated text stays in the
output folder the user chose (by default the user cache), never in the repository.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alignlab.core.splits import SplitName, hash_split, unit_hash
from alignlab.guard.augment import augment
from alignlab.guard.constitution import Constitution
from alignlab.guard.recipe import Recipe
from alignlab.guard.seeds import Seed, constitution_seeds, dataset_seeds, synthetic_seeds
from alignlab.models.base import Backend, SamplingParams


def split_of(text: str, test_fraction: float) -> SplitName:
    """``"test"`` or ``"train"``, by a hash of the request text (stable across runs and machines).

    Raises:
        ConfigError: ``test_fraction`` is outside ``[0, 1]``.
    """
    return hash_split(f"split:{text}", test_fraction)


def gather_seeds(
    recipe: Recipe, constitution: Constitution, root: Path | None, generator: Backend | None
) -> list[Seed]:
    """Every seed, deduplicated by text (the first source wins)."""
    seeds = list(constitution_seeds(constitution))
    if root is not None:
        seeds += list(dataset_seeds(root, recipe.max_per_source))
    if generator is not None and recipe.synthetic_per_category > 0:
        seeds += list(synthetic_seeds(constitution, generator, recipe.synthetic_per_category, recipe.seed))
    unique: dict[str, Seed] = {}
    for s in seeds:
        unique.setdefault(s.text, s)
    return list(unique.values())


def examples(recipe: Recipe, seeds: list[Seed]) -> Iterator[dict[str, Any]]:
    """The examples (without responses) the recipe makes of the seeds, with stable ids."""
    for seed in seeds:
        split = split_of(seed.text, recipe.test_fraction)
        request = seed.text[: recipe.max_request_chars]
        rng = random.Random(f"{recipe.seed}:{seed.text}")
        families = ["plain"]
        if split == "train":
            families += rng.sample(
                list(recipe.train_families), k=min(recipe.augment_copies, len(recipe.train_families))
            )
        elif seed.label == 1:
            held = list(recipe.held_out_families)
            first = int(unit_hash(f"families:{seed.text}") * len(held))
            families += [
                held[(first + k) % len(held)] for k in range(min(recipe.held_out_per_seed, len(held)))
            ]
        else:
            families.append(rng.choice(list(recipe.held_out_families)))
        for family in families:
            ident = hashlib.sha256(f"{family}:{seed.text}".encode()).hexdigest()[:16]
            yield {
                "id": ident,
                "messages": augment(request, family, recipe.seed),
                "request": seed.text,
                "label": seed.label,
                "category": seed.category,
                "source": seed.source,
                "augmentation": family,
                "split": split,
            }


def build(
    recipe: Recipe,
    constitution: Constitution,
    out: Path,
    *,
    policy: Backend,
    root: Path | None,
    generator: Backend | None,
    batch_size: int = 16,
) -> Path:
    """Build (or resume) the exchange dataset in ``out``; returns the path of ``exchanges.jsonl``."""
    from alignlab.core.jsonl import read_jsonl, write_jsonl
    from alignlab.core.progress import progress_bar
    from alignlab.core.results import ResultsFile

    out.mkdir(parents=True, exist_ok=True)
    seeds_path = out / "seeds.jsonl"
    if seeds_path.is_file():  # the generator samples: reuse its seeds so a resumed run stays consistent
        seeds = [
            Seed(**{k: r[k] for k in ("text", "label", "category", "source")}) for r in read_jsonl(seeds_path)
        ]
    else:
        seeds = gather_seeds(recipe, constitution, root, generator)
        write_jsonl(seeds_path, [asdict(s) for s in seeds])
    seeds, decontamination = clean(recipe, seeds, root, out)
    # A stable shuffled order (by id, a hash): any prefix is an unbiased sample of every source.
    todo_all = sorted(examples(recipe, seeds), key=lambda e: str(e["id"]))
    if recipe.max_examples:
        todo_all = todo_all[: recipe.max_examples]
    results = ResultsFile(out / "exchanges.jsonl", "id")
    todo = [e for e in todo_all if e["id"] not in results]
    # Within windows of the id order, similar lengths share a batch (less padding); a run stopped
    # early still holds about a prefix of the shuffled order.
    window = 16 * batch_size
    todo = [
        e
        for start in range(0, len(todo), window)
        for e in sorted(todo[start : start + window], key=lambda e: len(str(e["messages"])))
    ]
    params = SamplingParams(max_new_tokens=recipe.response_tokens)
    with progress_bar() as bar:
        task = bar.add_task("policy answers", total=len(todo_all), completed=len(todo_all) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            for example, gen in zip(
                chunk, policy.generate([e["messages"] for e in chunk], params), strict=True
            ):
                results.append({**example, "response": gen.text})
            bar.update(task, advance=len(chunk))
    wanted = {e["id"] for e in todo_all}
    write_card(out, [r for r in results.records() if r["id"] in wanted], recipe, decontamination)
    return results.path


def clean(
    recipe: Recipe, seeds: list[Seed], root: Path | None, out: Path
) -> tuple[list[Seed], dict[str, Any]]:
    """``seeds`` without any that repeat an evaluation item, and the report (cached in ``out``)."""
    from alignlab.guard.decontam import Decontaminator, Reference, decontaminate, load_embedder
    from alignlab.guard.evalsets import load_eval_sets

    refs = [Reference(i.id, i.set, i.text) for i in load_eval_sets(root)] if root is not None else []
    settings = [recipe.decontam_jaccard, recipe.decontam_cosine, recipe.decontam_embedder]
    key = hashlib.sha256(
        json.dumps([[s.text for s in seeds], [[r.id, r.text] for r in refs], settings]).encode()
    ).hexdigest()
    cache = out / "decontamination.json"
    if cache.is_file() and (known := json.loads(cache.read_text())).get("key") == key:
        report = known["report"]
    else:
        embedder = None if recipe.decontam_embedder == "none" else load_embedder(recipe.decontam_embedder)
        checker = Decontaminator(refs, recipe.decontam_jaccard, recipe.decontam_cosine, embedder)
        _, report = decontaminate(seeds, lambda s: s.text, lambda s: s.source, checker)
        cache.write_text(json.dumps({"key": key, "report": report}, indent=2) + "\n")
    dropped = {m["text"] for m in report["matches"]}
    return [s for s in seeds if s.text[:200] not in dropped], report


def selected(recipe: Recipe, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a recipe uses: all, or its first ``max_examples`` in id order."""
    ordered = sorted(records, key=lambda r: str(r["id"]))
    return ordered[: recipe.max_examples] if recipe.max_examples else ordered


def write_card(
    out: Path, records: list[dict[str, Any]], recipe: Recipe, decontamination: dict[str, Any] | None = None
) -> None:
    """``card.json``: counts per split, label, category, source and augmentation; decontamination's drops."""
    card: dict[str, Any] = {"recipe": asdict(recipe), "total": len(records)}
    if decontamination is not None:
        card["decontamination"] = {k: v for k, v in decontamination.items() if k != "matches"}
        card["decontamination"]["matches"] = decontamination["matches"][:50]
    for key in ("split", "label", "category", "source", "augmentation"):
        card[f"by_{key}"] = dict(Counter(str(r[key]) for r in records).most_common())
    card["by_split_and_label"] = dict(Counter(f"{r['split']}/{r['label']}" for r in records))
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
