"""One command from a constitution to a labelled exchange dataset.

Seeds (constitution examples, training datasets, generator-written requests) are split by a
hash of their text, augmented (training families for the train split; every held-out
family for harmful test seeds), answered by the policy, and appended to ``exchanges.jsonl``
as they are made, so an interrupted run resumes without duplicates. ``card.json`` counts
examples per split, label, category, source and augmentation. Generated text stays in the
output folder the user chose (by default the user cache), never in the repository.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alignlab.core.splits import SplitName, hash_split, unit_hash
from alignlab.guard.answers import AnswerCache, answer
from alignlab.guard.augment import augment
from alignlab.guard.constitution import Constitution
from alignlab.guard.recipe import Recipe
from alignlab.guard.seeds import Seed, constitution_seeds, dataset_seeds, redteam_seeds, synthetic_seeds
from alignlab.models.base import Backend, SamplingParams


def split_of(text: str, test_fraction: float) -> SplitName:
    """``"test"`` or ``"train"``, by a hash of the request text (stable across runs and machines).

    Raises:
        ConfigError: ``test_fraction`` is outside ``[0, 1]``.
    """
    return hash_split(f"split:{text}", test_fraction)


def gather_seeds(
    recipe: Recipe,
    constitution: Constitution,
    root: Path | None,
    generator: Backend | None,
    embedder: Any = None,
) -> tuple[list[Seed], dict[str, Any] | None]:
    """Every seed, deduplicated by text (the first source wins), and the red-team screening report.

    ``embedder`` (texts → unit vectors) screens the HH-RLHF red-team turns when the recipe asks
    for them (``hh_redteam``).
    """
    seeds = list(constitution_seeds(constitution))
    redteam = None
    if root is not None:
        seeds += list(dataset_seeds(root, recipe.max_per_source, recipe.stackexchange_questions))
        if recipe.hh_redteam > 0:
            if embedder is None:
                from alignlab.errors import ConfigError

                raise ConfigError(
                    "hh_redteam screens turns with an embedder; set decontam_embedder (not none)"
                )
            found, redteam = redteam_seeds(
                root, constitution, embedder, recipe.hh_redteam, recipe.hh_redteam_screen
            )
            seeds += found
    if generator is not None and recipe.synthetic_per_category > 0:
        seeds += list(synthetic_seeds(constitution, generator, recipe.synthetic_per_category, recipe.seed))
    unique: dict[str, Seed] = {}
    for s in seeds:
        unique.setdefault(s.text, s)
    return list(unique.values()), redteam


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
    batch_size: int = 32,
    answers: Path | None = None,
) -> Path:
    """Build (or resume) the exchange dataset in ``out``; returns the path of ``exchanges.jsonl``.

    ``answers`` is an :class:`~alignlab.guard.answers.AnswerCache` file shared by every data
    folder of the same policy and answer length: answers found there are not generated again.
    """
    from alignlab.core.jsonl import read_jsonl, write_jsonl
    from alignlab.core.progress import progress_bar
    from alignlab.core.results import ResultsFile

    out.mkdir(parents=True, exist_ok=True)
    seeds_path, redteam_path = out / "seeds.jsonl", out / "redteam.json"
    checks = Checks(recipe, root)
    if seeds_path.is_file():  # the generator samples: reuse its seeds so a resumed run stays consistent
        seeds = [
            Seed(**{k: r[k] for k in ("text", "label", "category", "source")}) for r in read_jsonl(seeds_path)
        ]
        redteam = json.loads(redteam_path.read_text()) if redteam_path.is_file() else None
    else:
        seeds, redteam = gather_seeds(
            recipe, constitution, root, generator, checks.embedder() if recipe.hh_redteam > 0 else None
        )
        if redteam is not None:
            redteam_path.write_text(json.dumps(redteam, indent=2) + "\n")
        write_jsonl(seeds_path, [asdict(s) for s in seeds])
    seeds, decontamination = clean(seeds, checks, out)
    real, traffic_report = traffic(recipe, constitution, checks, out)
    # A stable shuffled order (by id, a hash): any prefix is an unbiased sample of every source.
    todo_all = sorted([*examples(recipe, seeds), *real], key=lambda e: str(e["id"]))
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
    fit = _fitter(policy, recipe.response_tokens)
    cache = AnswerCache(answers, answerer(recipe), recipe.response_tokens) if answers else None
    with progress_bar() as bar:
        task = bar.add_task("policy answers", total=len(todo_all), completed=len(todo_all) - len(todo))
        fresh = []
        prompts = {e["id"]: fit(e["messages"]) for e in todo}
        for e in todo:  # answers another data folder or run already made are reused, not regenerated
            known = cache.get(prompts[e["id"]]) if cache is not None else None
            if known is None:
                fresh.append(e)
            else:
                results.append({**e, "response": known})
                bar.update(task, advance=1)
        by_id = {e["id"]: e for e in fresh}
        for ident, text in answer(policy, [(e["id"], prompts[e["id"]]) for e in fresh], params, batch_size):
            if cache is not None:
                cache.put(prompts[ident], text)
            results.append({**by_id[ident], "response": text})
            bar.update(task, advance=1)
    wanted = {e["id"] for e in todo_all}
    card = {"decontamination": decontamination, "real_traffic": traffic_report, "hh_redteam": redteam}
    write_card(out, [r for r in results.records() if r["id"] in wanted], recipe, card)
    return results.path


def answerer(recipe: Recipe) -> str:
    """The name answers are cached under: the policy spec, and the precision unless it is fp32."""
    precision = recipe.answer_precision
    return recipe.policy if precision == "fp32" else f"{recipe.policy}@{precision}"


def in_answer_precision(policy: Backend, recipe: Recipe) -> Backend:
    """``policy`` cast to ``recipe.answer_precision`` (a local model's weights; fp32 leaves it as is).

    Raises:
        ConfigError: a reduced precision asked of a backend whose weights are not in this process.
    """
    if recipe.answer_precision == "fp32":
        return policy
    from alignlab.errors import ConfigError
    from alignlab.models.hf import HFBackend

    if not isinstance(policy, HFBackend):
        raise ConfigError(
            f"answer_precision {recipe.answer_precision} casts a local model's weights; "
            f"{recipe.policy!r} is not one (use fp32)"
        )
    import torch

    policy.model.to(torch.bfloat16)
    return policy


class Checks:
    """The decontamination checker and the embedder, built once and only when a step needs them."""

    def __init__(self, recipe: Recipe, root: Path | None) -> None:
        self.recipe = recipe
        self.root = root
        self._checker: Any = None
        self._embedder: Any = None

    @functools.cached_property
    def references(self) -> list[Any]:
        from alignlab.guard.decontam import Reference
        from alignlab.guard.evalsets import load_eval_sets, shipping_bar

        items = [*(load_eval_sets(self.root) if self.root else []), *shipping_bar()]
        return [Reference(i.id, i.set, i.text) for i in items]

    def embedder(self) -> Any:
        from alignlab.guard.decontam import load_embedder

        if self._embedder is None and self.recipe.decontam_embedder != "none":
            self._embedder = load_embedder(self.recipe.decontam_embedder)
        return self._embedder

    def checker(self) -> Any:
        from alignlab.guard.decontam import Decontaminator

        if self._checker is None:
            r = self.recipe
            self._checker = Decontaminator(
                self.references, r.decontam_jaccard, r.decontam_cosine, self.embedder()
            )
        return self._checker

    def key(self, texts: list[str], *extra: Any) -> str:
        r = self.recipe
        settings = [r.decontam_jaccard, r.decontam_cosine, r.decontam_embedder, *extra]
        refs = [[x.id, x.text] for x in self.references]
        return hashlib.sha256(json.dumps([texts, refs, settings]).encode()).hexdigest()


def cached(path: Path, key: str, make: Any) -> Any:
    """``make()``'s JSON result, reused from ``path`` while its key stays the same."""
    if path.is_file() and (known := json.loads(path.read_text())).get("key") == key:
        return known["value"]
    value = make()
    path.write_text(json.dumps({"key": key, "value": value}, indent=2) + "\n")
    return value


def clean(seeds: list[Seed], checks: Checks, out: Path) -> tuple[list[Seed], dict[str, Any]]:
    """``seeds`` without any that repeat an evaluation item, and the report (cached in ``out``)."""
    from alignlab.guard.decontam import decontaminate

    def make() -> dict[str, Any]:
        return decontaminate(seeds, lambda s: s.text, lambda s: s.source, checks.checker())[1]

    report = cached(out / "decontamination.json", checks.key([s.text for s in seeds]), make)
    dropped = {m["text"] for m in report["matches"]}
    return [s for s in seeds if s.text[:200] not in dropped], report


def traffic(
    recipe: Recipe, constitution: Constitution, checks: Checks, out: Path
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Benign examples from the real-traffic training part, screened and decontaminated (cached)."""
    if recipe.real_traffic == "none" or recipe.real_traffic_conversations <= 0:
        return [], None
    from alignlab.guard.traffic import training_part

    disallowed = [e for c in constitution.side("harmful") for e in c.disallowed]
    settings = [recipe.real_traffic, recipe.real_traffic_conversations, recipe.real_traffic_turns,
                recipe.real_traffic_heldout, recipe.real_traffic_screen, disallowed]  # fmt: skip
    key = checks.key([], *settings)

    def make() -> dict[str, Any]:
        embedder = checks.embedder()
        if embedder is None:
            from alignlab.errors import ConfigError

            raise ConfigError("screening real traffic needs an embedder; set decontam_embedder (not none)")
        return training_part(recipe, disallowed, embedder, checks.checker())

    value = cached(out / "traffic.json", key, make)
    return value["examples"], value["report"]


def _fitter(policy: Backend, answer_tokens: int) -> Any:
    """Long conversations cut to fit the policy's context (a local policy counts; others pass as they are)."""
    if getattr(policy, "context_length", None) is None or not hasattr(policy, "encode"):
        return lambda messages: messages
    from alignlab.guard.scoring import fit_messages

    return lambda messages: fit_messages(policy, messages, answer_tokens)  # type: ignore[arg-type]


def selected(recipe: Recipe, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a recipe uses: all, or its first ``max_examples`` in id order."""
    ordered = sorted(records, key=lambda r: str(r["id"]))
    return ordered[: recipe.max_examples] if recipe.max_examples else ordered


def write_card(
    out: Path, records: list[dict[str, Any]], recipe: Recipe, extra: dict[str, Any] | None = None
) -> None:
    """``card.json``: counts per split, label, category, source and augmentation; decontamination's drops."""
    card: dict[str, Any] = {"recipe": asdict(recipe), "total": len(records)}
    for name, report in (extra or {}).items():
        if report is not None:
            card[name] = {k: v for k, v in report.items() if k not in ("matches", "removed")}
            for listing in ("matches", "removed"):
                if listing in report:
                    card[name][listing] = report[listing][:50]
    for key in ("split", "label", "category", "source", "augmentation"):
        card[f"by_{key}"] = dict(Counter(str(r[key]) for r in records).most_common())
    card["by_split_and_label"] = dict(Counter(f"{r['split']}/{r['label']}" for r in records))
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
