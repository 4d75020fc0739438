"""Benchmark: the embedded model (SmolLM2-135M-Instruct) on HumanEval, by `alignlab code run`.

For each temperature, draws ``--n`` samples per problem in instruct mode, runs them in the
sandbox, ranks them, and records pass@1 and pass@10 with bootstrap 95% intervals (tasks
resampled with replacement), pass@1 under each ranker, and, beside them, the Codex-12B
anchor of Chen et al. (2021, Table 1). Sample, result and report files go to ``--work``
(a rerun with the same folder resumes).

    python benchmarks/code_humaneval.py                       # full: 164 problems, n=20, T=0.2 and 0.8
    python benchmarks/code_humaneval.py --limit 3 --n 2 --temperatures 0.8 --max-new-tokens 64   # smoke

Budget: ~110 tokens/s batched on a 2-core CPU, so the full run (6,560 samples of up to 384
tokens) takes many hours there; run it on a GPU where one is available.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import write

from alignlab.code.passk import pass_at_k
from alignlab.code.pipeline import RESULTS, RunConfig, run
from alignlab.code.problems import numbered_records

CODEX_12B = {
    "model": "Codex-12B",
    "pass@1": 28.8,
    "pass@10": 46.8,
    "pass@100": 72.3,
    "unit": "percent",
    "source": "Chen et al. 2021, Evaluating Large Language Models Trained on Code, Table 1",
    "note": "pass@1 at T=0.2, pass@10 and pass@100 at T=0.8 (their best temperature for each k), n=200",
}


def bootstrap(passed: dict[str, list[bool]], ks: tuple[int, ...], rounds: int, seed: int) -> dict[str, Any]:
    """95% percentile intervals of pass@k, resampling tasks with replacement."""
    rng = random.Random(seed)
    tasks = list(passed)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        picked = [rng.choice(tasks) for _ in tasks]
        resampled = {f"{t}#{i}": passed[t] for i, t in enumerate(picked)}
        for name, value in pass_at_k(resampled, ks).items():
            draws[name].append(value)
    intervals = {}
    for name, values in draws.items():
        values.sort()
        intervals[name] = [values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]]
    return intervals


def one_temperature(args: argparse.Namespace, temperature: float, work: Path) -> dict[str, Any]:
    config = RunConfig(
        model=args.model,
        mode=args.mode,
        n=args.n,
        temperature=temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        batch_size=args.batch_size,
        workers=args.workers,
        k=(1, 10, 100),
        seed=args.seed,
    )
    folder = work / f"T{temperature}"
    started = time.perf_counter()
    summary = run(config, folder)
    seconds = time.perf_counter() - started
    passed: dict[str, list[bool]] = defaultdict(list)
    for _, record in numbered_records(folder / RESULTS):
        passed[record["task_id"]].append(bool(record["passed"]))
    return {
        "temperature": temperature,
        "pass_at_k": summary["pass_at_k"],
        "ci95": bootstrap(passed, (1, 10), args.bootstrap, args.seed),
        "pass_at_1_by_ranker": summary["pass_at_1_by_ranker"],
        "verdicts": summary["verdicts"],
        "samples": summary["samples"],
        "tasks": summary["tasks"],
        "seconds": round(seconds, 1),
        "isolation_warnings": (summary["isolation"] or {}).get("warnings", []),
        "folder": str(folder),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--mode", default="instruct", help="prompt mode: instruct or completion")
    parser.add_argument("--n", type=int, default=20, help="samples per problem")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.2, 0.8])
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="sandbox workers (0: one per core)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for samples and results (resumable)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="code_humaneval_"))
    runs = [one_temperature(args, t, work) for t in args.temperatures]
    problems = args.limit if args.limit is not None else 164
    size = (
        f"{problems} problems x n={args.n} at T={'/'.join(map(str, args.temperatures))}, "
        f"max_new_tokens={args.max_new_tokens}"
    )
    every_problem = problems >= 164 and args.max_new_tokens >= 384
    if every_problem and args.n < 20:
        size += (
            f" (every problem, but n={args.n} samples each instead of 20: pass@1 is unbiased but noisier, "
            "and pass@k needs n >= k)"
        )
    elif not every_problem:
        size += " (a smoke run, not the full benchmark: numbers are not comparable)"
    write(
        "code_humaneval",
        {
            "size": size,
            "model": args.model,
            "mode": args.mode,
            "top_p": args.top_p,
            "bootstrap_resamples": args.bootstrap,
            "runs": runs,
            "anchor": CODEX_12B,
        },
    )


if __name__ == "__main__":
    main()
