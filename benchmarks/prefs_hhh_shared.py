"""The HHH language-model evaluation with each context computed once, against every row whole.

Both sides score the same rankings of BIG-bench ``hhh_alignment`` with SmolLM2-135M-Instruct
(all 30 layers, float32) by the summed log-probability of each response, without and with the
shipped HHH prompt (whose keys and values both sides compute once):

* ``unshared`` (the path before): every (context, response) row computed whole, in batches of
  ``--batch-size`` rows, so a ranking's context is computed once per response;
* ``shared`` (``alignlab.prefs.hhh.lm_scores``): each context once, after the prompt's cache,
  then its responses after the context's cache, at most ``--batch-size`` response rows a pass.

Each timing covers the whole call (building the prompt's cache included, equal on both
sides); the sides alternate within each repeat and the median is kept. The two sides' scores
must agree to 1e-5 relative to their size (float32 sums added in another order) and decide
every pair alike; the largest absolute and relative gaps are recorded. The ratio is
meaningful only within one run on one machine, so this is not resumable. The default (40
rankings, one repeat, one thread) took about 14 minutes on a busy two-core machine.

    python benchmarks/prefs_hhh_shared.py [--size smoke|default] [--threads 1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common import median, write

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"layers": 2, "limit": 4},
    "default": {"layers": 0, "limit": 40},
}
# A score sums ~50 token log-probabilities of magnitude ~100 in float32: the two paths add them
# in different orders, so they agree to float32 precision, relative to the score's size.
RELATIVE_TOLERANCE = 1e-5


def token_slots(tokenizer: Any, rankings: list[Any]) -> dict[str, int]:
    """Real tokens each side runs through the model (prompt excluded): contexts once or once per response."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    contexts = [count(r.context) for r in rankings]
    responses = [[count(x) for x in r.responses] for r in rankings]
    return {
        "unshared": sum(c * len(xs) + sum(xs) for c, xs in zip(contexts, responses, strict=True)),
        "shared": sum(c + sum(xs) for c, xs in zip(contexts, responses, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per forward pass, both sides")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (on a busy 2-core machine 2 threads spin-wait)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from alignlab.prefs.distill import load_lm
    from alignlab.prefs.hhh import lm_scores, lm_scores_unshared, suite_rankings
    from alignlab.prefs.prompt import load_prompt

    size = SIZES[args.size]
    rankings = suite_rankings("hhh", args.data_dir, limit=size["limit"])
    lm, tokenizer = load_lm("smollm2", size["layers"])
    lm.eval()
    sides = {
        "unshared": lambda prompt: lm_scores_unshared(lm, tokenizer, rankings, prompt, args.batch_size),
        "shared": lambda prompt: lm_scores(lm, tokenizer, rankings, prompt, args.batch_size)["sum"],
    }
    results: dict[str, Any] = {}
    for name, prompt in (("none", ""), ("hhh", load_prompt())):
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        scores: dict[str, list[list[float]]] = {}
        for repeat in range(args.repeats):
            for side, run in sides.items():
                began = time.perf_counter()
                scores[side] = run(prompt)
                seconds[side].append(time.perf_counter() - began)
                print(f"prompt {name}  repeat {repeat}  {side:<9} {seconds[side][-1]:7.1f} s", flush=True)
        pairs = [
            (a, b)
            for x, y in zip(scores["unshared"], scores["shared"], strict=True)
            for a, b in zip(x, y, strict=True)
        ]
        gap = max(abs(a - b) for a, b in pairs)
        relative = max(abs(a - b) / max(1.0, abs(a)) for a, b in pairs)
        flipped = sum(
            (x[w] > x[lose]) != (y[w] > y[lose])
            for r, x, y in zip(rankings, scores["unshared"], scores["shared"], strict=True)
            for w, lose in r.pairs()
        )
        if relative > RELATIVE_TOLERANCE or flipped:
            raise SystemExit(f"prompt {name}: shared and unshared scores differ ({relative:.1e} relative)")
        med = {side: median(values) for side, values in seconds.items()}
        results[name] = {
            "seconds": med,
            "seconds_repeats": seconds,
            "ratio_unshared_over_shared": med["unshared"] / med["shared"],
            "max_abs_score_gap": gap,
            "max_relative_score_gap": relative,
            "pairs_decided_differently": flipped,
        }
    layers = f"first {size['layers']} of 30 layers" if size["layers"] else "all 30 layers"
    pairs = sum(len(r.pairs()) for r in rankings)
    write(
        "prefs_hhh_shared",
        {
            "size": args.size,
            "size_described": (
                f"SmolLM2-135M-Instruct, {layers}, float32, the first {len(rankings)} hhh rankings "
                f"({pairs} pairs, {sum(len(r.responses) for r in rankings)} responses), "
                f"{args.batch_size} rows per pass, {args.repeats} repeat(s), {args.threads} torch thread(s)"
            ),
            "settings": {
                **size,
                "batch_size": args.batch_size,
                "repeats": args.repeats,
                "threads": args.threads,
            },
            "by_prompt": results,
            "token_slots_without_prompt": token_slots(tokenizer, rankings),
            "relative_tolerance": RELATIVE_TOLERANCE,
        },
    )


if __name__ == "__main__":
    main()
