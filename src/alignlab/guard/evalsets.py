"""Evaluation sets for the guard. These never train, tune prompts or set thresholds.

Benign traffic: real chat requests (arena_hard v0.1 and v2.0, mt_bench, and the held-out part of
a recipe's real traffic, :mod:`alignlab.guard.traffic`); over-refusal sets
(XSTest safe, coconot_contrast, the held-out half of cyberseceval mitre_frr). Harmful:
XSTest unsafe. The guard's own test split (seeds hashed away from training, with held-out
augmentation families) is added by :mod:`alignlab.guard.evaluate`. The shipping bar
(:func:`shipping_bar`, the requests of the default guard's release test) is evaluation-only too:
training data is decontaminated against it, though it is no benchmark set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from alignlab.guard.seeds import half

BENIGN_TRAFFIC = ("arena_hard", "mt_bench", "real_traffic_heldout")
OVER_REFUSAL = ("xstest_safe", "coconot_contrast", "mitre_frr_heldout")
HARMFUL = ("xstest_unsafe",)


@dataclass(frozen=True)
class EvalItem:
    """One evaluation request (a single user turn) with its label and set."""

    id: str
    text: str
    label: int
    set: str


def shipping_bar() -> list[EvalItem]:
    """The default guard's shipping bar (``guard/data/shipping_bar.yaml``), harmful requests first."""
    from importlib import resources

    import yaml

    path = resources.files("alignlab.guard") / "data" / "shipping_bar.yaml"
    raw = yaml.safe_load(path.read_text("utf-8"))
    return [
        EvalItem(f"bar-{side}-{n}", str(text), label, f"shipping_bar_{side}")
        for side, label in (("harmful", 1), ("benign", 0))
        for n, text in enumerate(raw[side])
    ]


def load_eval_sets(root: Path, max_per_set: int = 0) -> list[EvalItem]:
    """All evaluation items, at most ``max_per_set`` per set (chosen by hash; 0 means all)."""
    from alignlab.core.datasets import dataset_file
    from alignlab.core.jsonl import read_jsonl

    sets: dict[str, list[EvalItem]] = {}

    def add(name: str, ident: str, text: str, label: int) -> None:
        sets.setdefault(name, []).append(EvalItem(ident, text, label, name))

    for version in ("arena_hard_v0_1", "arena_hard_v2_0"):
        for r in read_jsonl(dataset_file(root, f"benign/{version}/prompts.jsonl")):
            add("arena_hard", str(r["id"]), str(r["prompt"]), 0)
    for name in ("mt_bench", "coconot_contrast"):
        for r in read_jsonl(dataset_file(root, f"benign/{name}/prompts.jsonl")):
            add(name, str(r["id"]), str(r["prompt"]), 0)
    for r in read_jsonl(dataset_file(root, "xstest/prompts.jsonl")):
        safe = r.get("label") == "safe"
        add("xstest_safe" if safe else "xstest_unsafe", str(r["id"]), str(r["prompt"]), int(not safe))
    for r in read_jsonl(dataset_file(root, "cyberseceval/prompts.jsonl")):
        text = str(r["prompt"])
        if r.get("subset") == "mitre_frr" and half(text, "mitre_frr") == 1:
            add("mitre_frr_heldout", str(r["id"]), text, 0)
    out: list[EvalItem] = []
    for items in sets.values():
        if max_per_set:
            items = sorted(items, key=lambda i: hashlib.sha256(i.id.encode()).hexdigest())[:max_per_set]
        out += items
    return out
