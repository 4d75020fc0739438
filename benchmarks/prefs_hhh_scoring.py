"""The HHH evaluation of a language model under every scoring rule, beside the length baseline.

SmolLM2-135M-Instruct (all 30 layers) scores each response of all 221 BIG-bench
``hhh_alignment`` pairs by its log-probability after the context, without and with the
shipped HHH prompt, under each rule of ``alignlab.prefs.likelihood``: ``sum`` (the paper's and
BIG-bench's way, the default), ``mean-token``, ``mean-char`` and ``pmi``. One shared pass per
prompt serves every rule (``pmi`` adds a pass over the responses after a neutral context).

Beside each accuracy: the "longer answer wins" rule on the same pairs, and how often the
scoring rule itself preferred the longer response, which shows how much of a result is length.
The rules are fixed in advance from the paper's and BIG-bench's description, never chosen by
these numbers: hhh_alignment is evaluation-only data. Not resumable: one run is about
10 minutes with one torch thread on a busy two-core machine.

    python benchmarks/prefs_hhh_scoring.py [--size smoke|default] [--threads 1] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

from common import write

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"layers": 2, "limit": 6},
    "default": {"layers": 0, "limit": 0},
}


def prefers_longer(rankings: list[Any], scores: list[list[float]]) -> float:
    """Of the pairs whose responses differ in length, the share where the longer one scored higher."""
    from alignlab.prefs.data import flatten_pairs

    position = {id(r): i for i, r in enumerate(rankings)}
    marks = []
    for ranking, winner, loser in flatten_pairs(rankings):
        a, b = ranking.responses[winner], ranking.responses[loser]
        if len(a) == len(b):
            continue
        s = scores[position[id(ranking)]]
        longer, shorter = (winner, loser) if len(a) > len(b) else (loser, winner)
        marks.append(s[longer] > s[shorter])
    return sum(marks) / max(1, len(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--batch-size", type=int, default=8, help="response rows per forward pass")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (on a busy 2-core machine 2 threads spin-wait)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from alignlab.prefs.distill import load_lm
    from alignlab.prefs.hhh import lm_scores, report, suite_rankings
    from alignlab.prefs.likelihood import DEFAULT_RULE, RULE_NAMES, RULES
    from alignlab.prefs.prompt import load_prompt

    size = SIZES[args.size]
    rankings = suite_rankings("hhh", args.data_dir, limit=size["limit"])
    lm, tokenizer = load_lm("smollm2", size["layers"])
    lm.eval()
    started = time.perf_counter()
    conditions: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for name, prompt in (("none", ""), ("hhh", load_prompt())):
        began = time.perf_counter()
        scores = lm_scores(lm, tokenizer, rankings, prompt, args.batch_size, RULE_NAMES)
        seconds = time.perf_counter() - began
        for rule in RULE_NAMES:
            result = report("hhh", f"language model, prompt {name}, {rule}", rankings, scores[rule])
            conditions.append(
                {
                    "prompt": name,
                    "rule": rule,
                    "overall": asdict(result.overall()),
                    "rows": [asdict(r) for r in result.rows],
                    "prefers_longer": prefers_longer(rankings, scores[rule]),
                }
            )
            print(result.table() + "\n", flush=True)
        print(f"prompt {name}: {seconds:.0f} s for every rule", flush=True)
        timings[name] = seconds
    layers = f"first {size['layers']} of 30 layers" if size["layers"] else "all 30 layers"
    longer = conditions[0]["overall"]["longer_wins"]
    write(
        "prefs_hhh_scoring",
        {
            "size": args.size,
            "size_described": (
                f"SmolLM2-135M-Instruct, {layers}, float32, {len(rankings)} rankings, "
                f"{conditions[0]['overall']['n']} pairs, {args.threads} torch thread(s)"
            ),
            "settings": {**size, "batch_size": args.batch_size, "threads": args.threads},
            "default_rule": DEFAULT_RULE,
            "rules": {rule: RULES.get(rule).describe for rule in RULE_NAMES},
            "paper_way": (
                "sum: BIG-bench's hhh_alignment is scored by multiple_choice_grade on "
                "cond_log_prob(inputs, targets, absolute_normalization=True), the summed log-probability "
                "of each target's tokens after the input (bigbench/api/json_task.py, "
                "bigbench/models/huggingface_models.py); the task README: 'the model's predicted "
                "probability is computed for each target'. No length normalisation."
            ),
            "conditions": conditions,
            "baselines": {"longer_answer_wins": longer},
            "seconds_per_prompt_all_rules": timings,
            "minutes": (time.perf_counter() - started) / 60,
        },
    )


if __name__ == "__main__":
    main()
