"""The guard on the public sets published guards report on, with their numbers beside ours.

XSTest prompt classification (450 prompts), XSTest response classification (2,250
hand-labelled completions), prompt-level flag rates on arena-hard, MT-bench and held-out real
traffic (Wilson 95% intervals), and recall on requests from sources the guard trained on
against a source it never saw (see :mod:`alignlab.guard.public` for every rule). Scores are
cached per guard under the alignlab cache and the run resumes; the JSON goes to
``benchmarks/results/guard_public.json``.

    python benchmarks/guard_public.py                  # every item of every set
    python benchmarks/guard_public.py --max-per-set 40 # a quick look
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common import write

# Published figures, as printed in their sources. Their items differ from ours: see NOTES.
WILDGUARD = "Han et al. 2024, WildGuard, arXiv 2406.18495v3, Tables 2 and 3 (XSTest-Resp column)"
QWEN3GUARD = "Qwen3Guard technical report, arXiv 2510.14276, Table 3 (XSTest response)"
UNCHECKED = "read from a transcription of the table, not from the report's own text"


def published(guard: str, f1: float, source: str, checked: bool = True) -> dict[str, Any]:
    """One published XSTest response-classification F1 (percent)."""
    row: dict[str, Any] = {"guard": guard, "task": "xstest_response", "f1": f1, "source": source}
    return row if checked else {**row, "note": UNCHECKED}


PUBLISHED: list[dict[str, Any]] = [
    published("WildGuard-7B", 94.7, WILDGUARD),
    published("Llama Guard 2 8B", 90.8, WILDGUARD),
    published("Llama Guard 7B", 82.0, WILDGUARD),
    published("GPT-4 (prompted)", 91.3, WILDGUARD),
    published("MD-Judge", 90.4, WILDGUARD),
    published("OpenAI Moderation API", 46.6, WILDGUARD),
    published("Llama Guard 3 8B", 89.8, QWEN3GUARD, checked=False),
    published("Llama Guard 4 12B", 88.9, QWEN3GUARD, checked=False),
    published("ShieldGemma 9B", 86.3, QWEN3GUARD, checked=False),
    published("Qwen3Guard-Gen-0.6B (strict)", 89.7, QWEN3GUARD, checked=False),
    published("Qwen3Guard-Gen-8B (strict)", 92.1, QWEN3GUARD, checked=False),
]
NOTES = (
    "Published XSTest response figures are on XSTest-Resp (WildGuard): about 446 completions, one per "
    "prompt, written by other models (OLMo, GPT-3.5, Vicuna, Llama 3, Mistral, Dolphin) and labelled "
    "harmful or not by human annotators per response, items with annotator disagreement dropped. Ours are"
    " the 2,250 completions of the five models in the XSTest repository, labelled by a rule from the "
    "prompt label and the hand-labelled compliance (see rules): five times as many items, other "
    "completions, and a rule where they have a human judgement, so the F1s are on different item sets and"
    " compare only roughly. Neither paper reports XSTest prompt-level F1 or a flag rate on XSTest safe "
    "prompts; ours are given without a published counterpart."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", default="default", help="default (shipped) or a guard folder")
    parser.add_argument(
        "--recipe", default="default", help="the recipe whose test split and traffic are used"
    )
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data-dir", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--max-per-set", type=int, default=0, help="items per set, by hash (0: all)")
    parser.add_argument(
        "--max-traffic", type=int, default=0, help="held-out real conversations, by hash (0: all)"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="summarise the items scored so far and score none (a partial run, labelled as one)",
    )
    args = parser.parse_args()

    from alignlab.core.progress import progress_bar
    from alignlab.core.results import ResultsFile
    from alignlab.guard import public
    from alignlab.guard.classifier import ExchangeClassifier
    from alignlab.guard.cli import _existing
    from alignlab.guard.evaluate import fingerprint, score_items
    from alignlab.guard.load import load_guard
    from alignlab.guard.recipe import load_recipe
    from alignlab.models.embedded import cache_root

    recipe = load_recipe(args.recipe)
    guard = load_guard(args.guard)
    baselines = {
        v: ExchangeClassifier.load(guard.folder / f"{v}_classifier", guard.policy.model)
        for v in ("input", "output")
    }
    try:
        test = _existing(recipe, args.data_dir)
    except Exception as exc:  # the OOD comparison needs the recipe's data; the rest does not
        print(f"no test split for the out-of-distribution comparison: {exc}")
        test = []
    items = public.xstest_prompts(args.data_dir) + public.xstest_completions(args.data_dir)
    items += public.benign_traffic(args.data_dir, test)
    if recipe.real_traffic != "none":
        items += public.traffic_items(
            recipe.real_traffic, recipe.real_traffic_heldout, recipe.real_traffic_turns, args.max_traffic
        )
    items = public.capped(items, args.max_per_set)
    stamp = fingerprint(guard.folder)[:16]
    out = cache_root() / "guard" / "public" / stamp
    out.mkdir(parents=True, exist_ok=True)
    results, errors = ResultsFile(out / "scores.jsonl", "id"), ResultsFile(out / "errors.jsonl", "id")
    meta = {
        i["id"]: {k: i[k] for k in ("model", "final_label", "strict_label", "source") if k in i}
        for i in items
    }
    todo = sorted(
        (i for i in items if i["id"] not in results),
        key=lambda i: len(str(i["messages"])) + len(i["response"]),
    )
    unscored: dict[str, int] = {}
    if args.summarise_only:
        for i in todo:
            unscored[str(i["set"])] = unscored.get(str(i["set"]), 0) + 1
        todo = []
    with progress_bar() as bar:
        task = bar.add_task("scoring public sets", total=len(items), completed=len(items) - len(todo))
        for start in range(0, len(todo), args.batch):
            group = todo[start : start + args.batch]
            for record in score_items(guard, baselines, group, 0, errors):
                results.append({**{k: v for k, v in record.items() if k != "response"}, **meta[record["id"]]})
            bar.update(task, advance=len(group))
    wanted = {i["id"] for i in items}
    records = [r for r in results.records() if r["id"] in wanted]
    summary = public.summarise(records, guard.thresholds)
    write(
        "guard_public",
        {
            "guard": args.guard if args.guard == "default" else Path(args.guard).name,
            "guard_sha256_16": stamp,
            "max_per_set": args.max_per_set,
            "max_traffic": args.max_traffic,
            "thresholds": guard.thresholds,
            "rules": {"xstest_response": public.RESPONSE_RULE, "xstest_response_strict": public.STRICT_RULE},
            "errors": len([e for e in errors.records() if e["id"] not in results]),
            "unscored": unscored,  # a partial run: items left unscored per set (the longest ones)
            **summary,
            "published": PUBLISHED,
            "published_notes": NOTES,
        },
    )


if __name__ == "__main__":
    main()
