"""Benchmark: alignlab's sampling throughput against transformers' ``generate`` on the same batch.

The same model, the same HumanEval prompts (``evalplus`` mode) and the same greedy settings
go through both sides in one process: alignlab's continuous-batching decode loop
(:func:`~alignlab.code.sampling.sample_continuous`, as ``alignlab code sample`` and the
benchmarks use it) and ``model.generate`` on the left-padded batch. Throughput counts the
tokens each side keeps (up to the end-of-sequence token or the stop string) over the wall
time, prefill included; both sides must produce the same greedy text, which is checked.

    nice -n 5 python benchmarks/code_speed.py                          # 16 prompts x 256 tokens
    python benchmarks/code_speed.py --prompts 2 --max-new-tokens 16 --repeats 1   # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import write

from alignlab.code.problems import HUMANEVAL, load_problems
from alignlab.code.sampling import MODES, SampleConfig, sample_continuous


def alignlab_side(backend: Any, problems: list[Any], config: SampleConfig) -> tuple[float, list[str], int]:
    """Seconds, replies and generated tokens of the continuous-batching loop."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "samples.jsonl"
        started = time.perf_counter()
        sample_continuous(backend, problems, config, out)
        seconds = time.perf_counter() - started
        records = {r["task_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    tokens = sum(len(r["logprobs"]) for r in records.values())
    return seconds, [records[p.task_id]["raw"] for p in problems], tokens


def generate_side(backend: Any, problems: list[Any], config: SampleConfig) -> tuple[float, list[list[int]]]:
    """Seconds and kept token ids of ``model.generate`` on the left-padded batch."""
    import torch

    mode = MODES.get(config.mode)
    prompts = [backend.encode(mode.prompt(p)) for p in problems]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    started = time.perf_counter()
    with torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=config.max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(backend.eos_ids),
            pad_token_id=backend.pad_id,
            stop_strings=list(mode.stop) or None,
            tokenizer=backend.tokenizer,
        )
    seconds = time.perf_counter() - started
    kept = []
    for row in out[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in backend.eos_ids or t == backend.pad_id), len(row))
        kept.append(row[:cut])
    return seconds, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--mode", default="evalplus")
    parser.add_argument("--prompts", type=int, default=16, help="HumanEval problems in the batch")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side (median reported)")
    args = parser.parse_args()
    from alignlab.models import load_backend

    backend = load_backend(args.model)
    problems = list(load_problems(HUMANEVAL).values())[: args.prompts]
    config = SampleConfig(
        model=args.model,
        n=1,
        temperature=0.0,
        top_p=1.0,
        max_new_tokens=args.max_new_tokens,
        mode=args.mode,
        batch_size=args.prompts,
    )
    warm = dataclasses.replace(config, max_new_tokens=2, batch_size=1)
    alignlab_side(backend, problems[:1], warm)  # untimed: first-call allocations on both sides
    generate_side(backend, problems[:1], warm)
    ours, theirs = [], []
    for repeat in range(args.repeats):  # alternate the order, so neither side always runs first
        sides = [("ours", alignlab_side), ("theirs", generate_side)]
        for name, side in sides if repeat % 2 == 0 else sides[::-1]:
            (ours if name == "ours" else theirs).append(side(backend, problems, config))
    ours_s = statistics.median(run[0] for run in ours)
    theirs_s = statistics.median(run[0] for run in theirs)
    _, replies, ours_tokens = ours[0]
    _, kept = theirs[0]
    stops = MODES.get(args.mode).stop
    theirs_text = [backend.tokenizer.decode(k, skip_special_tokens=True) for k in kept]
    for stop in stops:
        theirs_text = [t.split(stop)[0] for t in theirs_text]
    theirs_tokens = sum(len(k) for k in kept)
    same = sum(a == b for a, b in zip(replies, theirs_text, strict=True))
    write(
        "code_speed",
        {
            "size": f"{args.prompts} HumanEval prompts in one batch, greedy, "
            f"up to {args.max_new_tokens} new tokens; median of {args.repeats} runs per side, "
            "order alternated",
            "model": args.model,
            "mode": args.mode,
            "alignlab_sampler": {
                "seconds": round(ours_s, 1),
                "tokens": ours_tokens,
                "tokens_per_s": round(ours_tokens / ours_s, 2),
            },
            "transformers_generate": {
                "seconds": round(theirs_s, 1),
                "tokens": theirs_tokens,
                "tokens_per_s": round(theirs_tokens / theirs_s, 2),
            },
            "ratio": round((ours_tokens / ours_s) / (theirs_tokens / theirs_s), 2),
            "identical_replies": f"{same} of {len(replies)}",
            "note": "tokens are those each side generated up to the end-of-sequence token or through "
            "the stop string; prefill included on both sides",
        },
    )


if __name__ == "__main__":
    main()
