"""Benchmark: reproduce a published HumanEval pass@1 with alignlab's code harness.

The embedded Qwen2.5-Coder-0.5B-Instruct (``qwen2.5-coder-0.5b``) answers all 164 HumanEval
problems greedily in the ``evalplus`` prompt mode (the instruct recipe Qwen2.5-Coder's report
evaluated with), through continuous batching; the sandbox runs each answer against the
problem's tests. Recorded: pass@1 with a bootstrap 95% interval (tasks resampled), the
verdicts, why each reply ended, the sampling throughput, and the published figure beside it.

Each sample is written as it is produced and each result as it is known, so a rerun with the
same ``--work`` folder skips what is done and goes on (its sampling time is added up over runs).

    nice -n 5 python benchmarks/code_reproduce.py                       # full: 164 problems
    python benchmarks/code_reproduce.py --limit 4 --max-new-tokens 64   # smoke (not comparable)

Budget: about 1.5 hours on two busy CPU cores (a 0.5B model in float32, about 20 tokens/s at 48
sequences); minutes on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from code_humaneval import bootstrap
from common import write

from alignlab.code.evaluate import EvaluateConfig, evaluate
from alignlab.code.pipeline import RESULTS, SAMPLES
from alignlab.code.problems import HUMANEVAL, load_problems, numbered_records
from alignlab.code.sampling import SampleConfig, sample_continuous

PUBLISHED = {
    "model": "Qwen2.5-Coder-0.5B-Instruct",
    "pass@1": 61.6,
    "unit": "percent",
    "source": "Hui et al. 2024, Qwen2.5-Coder Technical Report (arXiv 2409.12186v3), instruct models table",
    "setup": "the released checkpoint (stored in bf16), greedy, EvalPlus instruct prompt with the reply "
    "prefilled to ```python, EvalPlus sanitiser, HumanEval base tests",
}
TIMING = "timing.jsonl"


def draw(args: argparse.Namespace, folder: Path) -> None:
    """Draw the missing samples, logging this run's cumulative samples, tokens and seconds to
    ``timing.jsonl`` after each one (so a run that is stopped still counts)."""
    from alignlab.models import load_backend

    problems = list(load_problems(HUMANEVAL).values())[: args.limit]
    started = time.perf_counter()
    backend = load_backend(args.model)
    loaded = time.perf_counter() - started
    config = SampleConfig(
        model=args.model,
        n=1,
        temperature=0.0,
        top_p=1.0,
        max_new_tokens=args.max_new_tokens,
        mode=args.mode,
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    run = {
        "run": time.time(),
        "batch_size": args.batch_size,
        "samples": 0,
        "tokens": 0,
        "seconds": 0.0,
        "load_s": loaded,
    }
    started = time.perf_counter()

    def progress(record: dict[str, Any]) -> None:
        run["samples"] += 1
        run["tokens"] += len(record["logprobs"])
        run["seconds"] = time.perf_counter() - started
        with (folder / TIMING).open("a") as log:
            log.write(json.dumps(run) + "\n")
        print(
            f"{record['task_id']}: {record['finish_reason']}, {len(record['logprobs'])} tokens "
            f"({run['tokens'] / run['seconds']:.1f} tokens/s so far)",
            file=sys.stderr,
            flush=True,
        )

    sample_continuous(backend, problems, config, folder / SAMPLES, on_sample=progress)


def sampling_totals(folder: Path) -> dict[str, Any]:
    """Samples, tokens and seconds summed over every run that drew into ``folder``
    (each run's last line holds its totals)."""
    lines = (folder / TIMING).read_text().splitlines() if (folder / TIMING).is_file() else []
    last: dict[Any, dict[str, Any]] = {}
    for number, line in enumerate(lines):
        if line.strip():
            record = json.loads(line)
            last[record.get("run", f"line {number}")] = record
    runs = list(last.values())
    samples, tokens = sum(r["samples"] for r in runs), sum(r["tokens"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "runs": len(runs),
        "samples": samples,
        "generated_tokens": tokens,
        "seconds": round(seconds, 1),
        "tokens_per_s": round(tokens / seconds, 2) if seconds else None,
        "model_load_s": round(runs[-1]["load_s"], 1) if runs else None,
        "batch_sizes": sorted({r.get("batch_size") for r in runs if r.get("batch_size")}),
        "notes": sorted({r["note"] for r in runs if r.get("note")}),
    }


def failure_breakdown(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Failed samples by the exception the tests raised (the first word of the sandbox's detail),
    and the samples cut at the token limit by whether they passed."""
    results = {(r["task_id"], r["completion_id"]): r for _, r in numbered_records(folder / RESULTS)}
    errors = Counter(
        (r["detail"] or r["verdict"]).split(":")[0].split(" (")[0]
        for r in results.values()
        if not r["passed"]
    )
    cut: Counter[str] = Counter()
    for _, sample in numbered_records(folder / SAMPLES):
        result = results.get((sample["task_id"], sample["completion_id"]))
        if sample["finish_reason"] == "length" and result is not None:
            cut["passed" if result["passed"] else "failed"] += 1
    return dict(errors.most_common()), dict(cut)


def complete_prefix(order: list[str], passed: dict[str, list[bool]]) -> dict[str, list[bool]]:
    """The results of the longest run of problems, from the first in ``order``, that all have one."""
    prefix: dict[str, list[bool]] = {}
    for task in order:
        if task not in passed:
            break
        prefix[task] = passed[task]
    return prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--mode", default="evalplus", help="prompt mode (evalplus: the published recipe)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=48, help="samples decoded at once")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems (a smoke run)")
    parser.add_argument("--workers", type=int, default=1, help="sandbox workers (0: one per core)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/benchmarks/code_reproduce"))
    parser.add_argument(
        "--score-only", action="store_true", help="score the samples drawn so far; draw none (a partial run)"
    )
    args = parser.parse_args()
    folder = args.work
    folder.mkdir(parents=True, exist_ok=True)
    if not args.score_only:
        draw(args, folder)
    summary = evaluate(folder / SAMPLES, folder / RESULTS, EvaluateConfig(k=(1,), workers=args.workers))
    passed: dict[str, list[bool]] = defaultdict(list)
    for _, record in numbered_records(folder / RESULTS):
        passed[record["task_id"]].append(bool(record["passed"]))
    prefix = complete_prefix(list(load_problems(HUMANEVAL))[: args.limit], passed)
    finish = Counter(record["finish_reason"] for _, record in numbered_records(folder / SAMPLES))
    errors, cut = failure_breakdown(folder)
    problems = args.limit if args.limit is not None else 164
    full = problems >= 164 and args.max_new_tokens >= 512 and summary["tasks"] >= 164
    size = f"{summary['tasks']} of {problems} problems, greedy, max_new_tokens={args.max_new_tokens}"
    if summary["tasks"] < problems:
        size += " (a partial run: the first problems in decoding order, not a random subset)"
    elif problems < 164 and args.max_new_tokens >= 512:
        size += f" (the first {problems} of 164 problems only: a partial run, not the full benchmark)"
    elif not full:
        size += " (a smoke run, not the full benchmark: not comparable)"
    write(
        "code_reproduce",
        {
            "size": size,
            "model": args.model,
            "mode": args.mode,
            "pass@1": summary["pass_at_k"].get("pass@1"),
            "ci95": bootstrap(passed, (1,), args.bootstrap, args.seed).get("pass@1"),
            "bootstrap_resamples": args.bootstrap,
            "tasks": summary["tasks"],
            "verdicts": summary["verdicts"],
            "finish_reasons": dict(finish),
            "failures_by_error": errors,
            "cut_at_max_new_tokens": cut,
            "complete_prefix": {
                "problems": len(prefix),
                "pass@1": sum(all(v) for v in prefix.values()) / len(prefix) if prefix else None,
                "ci95": bootstrap(prefix, (1,), args.bootstrap, args.seed).get("pass@1") if prefix else None,
                "note": "the first problems in HumanEval order that all have a result; in a partial run this "
                "is the figure to read, since the samples still decoding when it stopped are the longer ones",
            },
            "sampling": sampling_totals(folder),
            "isolation_warnings": (summary["isolation"] or {}).get("warnings", []),
            "published": PUBLISHED,
        },
    )


if __name__ == "__main__":
    main()
