"""Seed requests for guard training, from the constitution, datasets on disk and a generator model.

Only sets that ``shared/data/README.md`` names as training data are read here: coconot's
harm-related "safety concern" prompts and its harmless non-compliance prompts, cyberseceval's
malicious interpreter prompts and one hash-half of mitre_frr (the other half is held out for
evaluation), and the benign training sets. Evaluation-only sets live in :mod:`alignlab.guard.evalsets`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.core.splits import hash64
from alignlab.errors import ConfigError
from alignlab.guard.constitution import Constitution
from alignlab.models.base import Backend, Prompt, SamplingParams

BENIGN_TRAINING = [
    "gsm8k_test",
    "self_instruct_seed_tasks",
    "self_instruct_user_oriented",
    "vicuna_bench",
    "ifeval",
    "truthfulqa",
    "humaneval",
]
COCONOT_HARMFUL = {
    "dangerous or sensitive topics",
    "privacy violations",
    "wildchats",
    "triggers for offensive language",
}
COCONOT_OUT_OF_SCOPE = {"misinformation", "copyright violations", "incomprehensible"}


@dataclass(frozen=True)
class Seed:
    """One request with its label: 1 = asks for harm the constitution forbids."""

    text: str
    label: int
    category: str
    source: str


def data_dir(explicit: str | Path | None = None) -> Path:
    """The shared datasets folder (see :func:`alignlab.core.datadir.data_root`), which must exist."""
    from alignlab.core.datadir import data_root
    from alignlab.core.datasets import root_origin

    path = data_root(explicit)
    if not path.is_dir():
        raise ConfigError(
            f"no data folder at {path.resolve()} ({root_origin(path)}); pass --data-dir or set "
            "$ALIGNLAB_DATA (`alignlab data` lists the datasets and where they come from)"
        )
    return path


def half(text: str, salt: str) -> int:
    """A stable 0/1 bucket for ``text`` (used to split a set into training and held-out halves)."""
    # The low bit of the digest's first byte: the halves the shipped guard was trained on.
    return (hash64(f"{salt}:{text}") >> 56) & 1


def constitution_seeds(constitution: Constitution) -> Iterator[Seed]:
    for cat in constitution.categories:
        for text in cat.disallowed:
            yield Seed(text, 1, cat.name, "constitution")
        for text in cat.allowed:
            yield Seed(text, 0, cat.name, "constitution")


def dataset_seeds(root: Path, max_per_source: int, stackexchange: int = 0) -> Iterator[Seed]:
    """Training seeds from the shared datasets, at most ``max_per_source`` per source (first by hash).

    ``stackexchange`` adds that many Stack Exchange questions (title and body, first by hash)
    as long benign requests.
    """
    from alignlab.core.datasets import dataset_file
    from alignlab.core.jsonl import read_jsonl

    pools: dict[str, list[Seed]] = {}
    for rec in read_jsonl(dataset_file(root, "coconot/prompts.jsonl")):
        sub = str(rec.get("subcategory", ""))
        if sub in COCONOT_OUT_OF_SCOPE:
            continue
        harmful = rec.get("category") == "Requests with safety concerns" and sub in COCONOT_HARMFUL
        key = f"coconot:{'harmful' if harmful else 'noncompliance'}"
        pools.setdefault(key, []).append(Seed(str(rec["prompt"]), int(harmful), f"coconot:{sub}", key))
    for rec in read_jsonl(dataset_file(root, "cyberseceval/prompts.jsonl")):
        text = str(rec["prompt"])
        if rec.get("subset") == "interpreter":
            pools.setdefault("cyberseceval:interpreter", []).append(
                Seed(text, 1, "cyber_attacks", "cyberseceval:interpreter")
            )
        elif rec.get("subset") == "mitre_frr" and half(text, "mitre_frr") == 0:
            pools.setdefault("cyberseceval:mitre_frr", []).append(
                Seed(text, 0, "security_education", "cyberseceval:mitre_frr")
            )
    for name in BENIGN_TRAINING:
        for rec in read_jsonl(dataset_file(root, f"benign/{name}/prompts.jsonl")):
            pools.setdefault(f"benign:{name}", []).append(Seed(str(rec["prompt"]), 0, name, f"benign:{name}"))
    for pool in pools.values():
        pool.sort(key=lambda s: hashlib.sha256(s.text.encode()).hexdigest())
        yield from pool[:max_per_source]
    if stackexchange > 0:
        questions = sorted(
            stackexchange_questions(root), key=lambda s: hashlib.sha256(s.text.encode()).hexdigest()
        )
        yield from questions[:stackexchange]


def stackexchange_questions(root: Path) -> list[Seed]:
    """Every Stack Exchange question with two or more answers, as a benign seed (title, blank line, body)."""
    from alignlab.prefs.data import ASSISTANT, HUMAN
    from alignlab.prefs.stackexchange import load_stackexchange_folder

    folder = root / "stackexchange"
    if not folder.is_dir():
        return []
    out = []
    for ranking in load_stackexchange_folder(folder).rankings:
        text = ranking.context.removeprefix(HUMAN).removesuffix(ASSISTANT).strip()
        out.append(Seed(text, 0, "stackexchange", f"stackexchange:{ranking.subset}"))
    return out


def redteam_seeds(
    root: Path, constitution: Constitution, embedder: Any, limit: int, threshold: float
) -> tuple[list[Seed], dict[str, Any]]:
    """First human turns of HH-RLHF red-team conversations that read as a disallowed request.

    The red-team attempts carry no per-request label, and many are harmless, so a turn is
    kept as a harmful seed only when its sentence embedding lies at ``threshold`` cosine or
    more from a harmful category's disallowed example (it is filed under that category);
    the others are not used at all. At most ``limit`` are kept (first by hash).

    Returns:
        The seeds and a report: turns considered, kept, and the rule.
    """
    import numpy as np

    from alignlab.core.datasets import dataset_file
    from alignlab.core.jsonl import read_jsonl
    from alignlab.prefs.data import first_human_turn

    turns = {
        first_human_turn(str(rec.get("chosen", "")))
        for rec in read_jsonl(dataset_file(root, "hh-rlhf/harmless-base-test.jsonl.gz"))
    }
    pool = sorted((t for t in turns if len(t) > 15), key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    examples = [(c.name, e) for c in constitution.side("harmful") for e in c.disallowed]
    sims = embedder(pool) @ embedder([e for _, e in examples]).T
    best = np.argmax(sims, axis=1)
    kept = [
        Seed(text, 1, examples[int(j)][0], "hh-rlhf:red-team")
        for text, j, row in zip(pool, best, sims, strict=True)
        if row[j] >= threshold
    ][:limit]
    report = {
        "considered": len(pool),
        "matched": int((sims.max(axis=1) >= threshold).sum()) if len(pool) else 0,
        "kept": len(kept),
        "rule": f"MiniLM cosine >= {threshold} to a harmful category's disallowed example",
    }
    return kept, report


_NUMBERED = re.compile(r"^\s*\d+[.)]\s*(.+?)\s*$")
_REFUSAL = re.compile(r"\b(I can't|I cannot|I'm sorry|I am sorry|as an AI)\b", re.IGNORECASE)


def synthetic_seeds(
    constitution: Constitution, generator: Backend, per_category: int, seed: int
) -> Iterator[Seed]:
    """New requests per category, written by ``generator`` from the category's description and examples.

    The generator continues a numbered list; lines that are refusals, duplicates of the
    examples or too short are dropped. Any backend works: a user's helpful-only model over
    an OpenAI-compatible endpoint gives better data than the small embedded model.
    """
    prompts: list[Prompt] = []
    owners = []
    for cat in constitution.categories:
        examples = cat.disallowed if cat.side == "harmful" else cat.allowed
        listing = "\n".join(f"{i + 1}. {e}" for i, e in enumerate(examples))
        ask = (
            f"Category: {cat.description}\nHere are example requests people send to a chat assistant in this "
            f"category:\n{listing}\nWrite {per_category} more different requests in this category, "
            "numbered, one per line, with no other text."
        )
        prompts.append([{"role": "user", "content": ask}])
        owners.append(cat)
    params = SamplingParams(max_new_tokens=40 * per_category, temperature=0.8, top_p=0.95, seed=seed)
    for cat, gen in zip(owners, generator.generate(prompts, params), strict=True):
        known = set(cat.disallowed) | set(cat.allowed)
        lines = [m.group(1) for line in gen.text.splitlines() if (m := _NUMBERED.match(line))]
        kept = [x for x in dict.fromkeys(lines) if len(x) > 15 and x not in known and not _REFUSAL.search(x)]
        for text in kept[:per_category]:
            yield Seed(text, int(cat.side == "harmful"), cat.name, f"synthetic:{generator.name}")
