"""Preference-model training throughput: our ranked-preference step against TRL's RewardTrainer.

Both sides train the same backbone (the embedded SmolLM2-135M-Instruct, cut to its first
``layers`` layers or whole) on the same HH harmless pairs, tokenised once by our encoder so
both see the same tokens (context cut from the left to ``max_tokens``, an end-of-context token
after each response), in the same batches of the same order, float32, AdamW at the same
constant learning rate, gradient clipping at 1.0, no gradient checkpointing, no evaluation,
logging or checkpoints inside the timed steps. Ours is ``alignlab.prefs.train.train`` with the
ranked objective in each batch layout: ``packed`` (the default: each pair's context once, then
both responses, pairs packed into rows with no padding between them), ``shared`` (contexts
once, padded) and ``rows`` (context + response per row, padded, as TRL batches). TRL's rows
are context + response; its pad token is set to ``<|endoftext|>`` because the tokenizer's
default pad is the end token itself, where TRL would then not read the reward.

A repeat loads a fresh model and times its steps after the first (warm-up); pairs/s is
``batch_size * (steps - 1)`` over that time, and each side's figure is the median over
repeats, which alternate sides so background load falls on both. Not resumable on purpose:
the ratio is only meaningful within one run on one machine. The default size (8 of 30 layers,
256 tokens, 8 pairs per step) takes about 15 minutes with one torch thread on a busy two-core
machine; ``--size full`` (all 30 layers, ~40 s per step here) about 40.

    python benchmarks/prefs_throughput.py [--size smoke|default|full] [--threads 1] [--sides alignlab trl]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, median, write

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"layers": 2, "max_tokens": 64, "batch_size": 4, "steps": 4, "repeats": 2, "pairs": 64},
    "default": {"layers": 8, "max_tokens": 256, "batch_size": 8, "steps": 6, "repeats": 3, "pairs": 256},
    "full": {"layers": 0, "max_tokens": 256, "batch_size": 8, "steps": 6, "repeats": 3, "pairs": 256},
}
LR = 1e-5
SIDES = ("alignlab", "alignlab-shared", "alignlab-rows", "trl")
LAYOUT_OF = {"alignlab": "packed", "alignlab-shared": "shared", "alignlab-rows": "rows"}
GOAL = 1.5


def encode_pairs(rankings: list[Any], max_tokens: int) -> list[dict[str, list[int]]]:
    """Each pair as TRL's pre-tokenised columns, cut exactly as our encoder cuts it."""
    from transformers import AutoTokenizer

    from alignlab.prefs.backbone import backbone_path
    from alignlab.prefs.batch import Encoder

    tokenizer = AutoTokenizer.from_pretrained(backbone_path("smollm2"))
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    encoder = Encoder(tokenizer, end_id, max_tokens)
    rows = []
    for ranking in rankings:
        encoded = encoder.encode(ranking)
        (winner, loser), *_ = ranking.pairs()
        rows.append(
            {
                "chosen_ids": encoded.context + encoded.responses[winner],
                "rejected_ids": encoded.context + encoded.responses[loser],
                "context": len(encoded.context),
            }
        )
    return rows


def slots_computed(
    rankings: list[Any], encoded: list[dict[str, Any]], timed: list[int], size: dict[str, Any]
) -> dict[str, int]:
    """Real tokens and the token slots (real + padding) each layout computes in the timed steps."""
    from transformers import AutoTokenizer

    from alignlab.prefs.backbone import backbone_path
    from alignlab.prefs.batch import Encoder, collate, pack

    tokenizer = AutoTokenizer.from_pretrained(backbone_path("smollm2"))
    encoder = Encoder(tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>"), size["max_tokens"])
    batch = size["batch_size"]
    slots = {"real_context_once": 0, "real_rows": 0, "packed": 0, "shared": 0, "rows (as TRL)": 0}
    for start in range(0, len(timed), batch):
        step = [encoder.encode(rankings[i]) for i in timed[start : start + batch]]
        rows = [
            encoded[i][side] for i in timed[start : start + batch] for side in ("chosen_ids", "rejected_ids")
        ]
        slots["real_rows"] += sum(map(len, rows))
        slots["real_context_once"] += sum(len(e.context) + sum(map(len, e.responses)) for e in step)
        slots["packed"] += pack(step, 0).ids.numel()
        shared = collate(step, 0, shared=True)
        slots["shared"] += shared.context_ids.numel() + shared.ids.numel()
        slots["rows (as TRL)"] += len(rows) * max(map(len, rows))
    return slots


def step_order(count: int, size: dict[str, Any], seed: int) -> list[int]:
    """The pair indices our training loop visits, in order: TRL is fed the same sequence."""
    from alignlab.prefs.train import step_indices

    return [i for step in range(size["steps"]) for i in step_indices(count, step, size["batch_size"], seed)]


def pairs_per_second(stamps: list[float], batch_size: int) -> float:
    return batch_size * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def run_alignlab(size: dict[str, Any], rankings: list[Any], layout: str, seed: int) -> list[float]:
    """Step-end timestamps of ``alignlab.prefs.train.train`` (ranked objective)."""
    from alignlab.prefs.train import TrainConfig, train

    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="prefs-throughput-") as tmp:
        config = TrainConfig(
            model="smollm2",
            layers=size["layers"],
            max_tokens=size["max_tokens"],
            steps=size["steps"],
            batch_size=size["batch_size"],
            lr=LR,
            seed=seed,
            layout=layout,
            objective="ranked",
            checkpoint_every=0,
            resume=False,
            out=tmp,
        )
        train(config, rankings, on_step=lambda step, loss: stamps.append(time.perf_counter()))
    return stamps


def run_trl(size: dict[str, Any], encoded: list[dict[str, list[int]]], seed: int) -> list[float]:
    """Step-end timestamps of TRL's RewardTrainer over the same batches in the same order."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from alignlab.prefs.backbone import backbone_path, keep_layers

    stamps: list[float] = []

    class Stamps(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    path = backbone_path("smollm2")
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    if size["layers"]:
        keep_layers(model, size["layers"])
    order = step_order(len(encoded), size, seed)
    data = Dataset.from_dict(
        {
            "chosen_ids": [encoded[i]["chosen_ids"] for i in order],
            "rejected_ids": [encoded[i]["rejected_ids"] for i in order],
        }
    )
    with tempfile.TemporaryDirectory(prefix="prefs-throughput-trl-") as tmp:
        args = RewardConfig(
            output_dir=tmp,
            per_device_train_batch_size=size["batch_size"],
            max_steps=size["steps"],
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            optim="adamw_torch",
            activation_checkpointing=False,  # TRL turns it on by default
            bf16=False,
            fp16=False,
            use_cpu=True,
            train_sampling_strategy="sequential",
            dataloader_num_workers=0,
            max_length=None,
            eos_token="<|im_end|>",
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            seed=seed,
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.pad_token = "<|endoftext|>"  # the default pad is the end token the reward is read at
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[Stamps()]
        )
        trainer.train()
        assert not getattr(trainer.model, "is_activation_checkpointing", False)
    return stamps


def plot(summary: dict[str, Any], repeats: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = list(repeats)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.bar(
        range(len(sides)), [summary[s] for s in sides], color=["#4c72b0", "#8da0cb", "#dd8452"][: len(sides)]
    )
    for i, side in enumerate(sides):
        ax.scatter([i] * len(repeats[side]), repeats[side], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(sides)), sides)
    ax.set_ylabel("pairs/s (median of repeats; dots: repeats)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (on a busy 2-core machine 2 threads spin-wait)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    try:
        import trl
    except ImportError as exc:
        raise SystemExit("this benchmark needs TRL: pip install -e '.[bench]'") from exc
    import transformers

    from alignlab.prefs.data import load_source, split

    size = SIZES[args.size]
    rankings = split(load_source("hh-harmless", args.data_dir or None).rankings, "train")[: size["pairs"]]
    encoded = encode_pairs(rankings, size["max_tokens"])
    order = step_order(len(encoded), size, args.seed)
    timed = order[size["batch_size"] :]  # the steps after the warm-up step
    tokens = slots_computed(rankings, encoded, timed, size)
    started = time.perf_counter()
    per_repeat: dict[str, list[float]] = {side: [] for side in args.sides}
    steps: dict[str, list[list[float]]] = {side: [] for side in args.sides}
    for repeat in range(size["repeats"]):
        for side in args.sides:
            if side == "trl":
                stamps = run_trl(size, encoded, args.seed)
            else:
                stamps = run_alignlab(size, rankings, LAYOUT_OF[side], args.seed)
            rate = pairs_per_second(stamps, size["batch_size"])
            per_repeat[side].append(rate)
            steps[side].append([b - a for a, b in itertools.pairwise(stamps)])
            print(f"repeat {repeat}  {side:<18} {rate:7.2f} pairs/s", flush=True)
    minutes = (time.perf_counter() - started) / 60
    summary = {side: median(rates) for side, rates in per_repeat.items()}
    ratio = summary["alignlab"] / summary["trl"] if {"alignlab", "trl"} <= set(summary) else None
    layers = f"first {size['layers']} of 30 layers" if size["layers"] else "all 30 layers"
    described = (
        f"SmolLM2-135M-Instruct, {layers}, full fine-tuning, float32, {size['max_tokens']}-token "
        f"context + response, {size['batch_size']} pairs per step, {size['steps']} steps per repeat "
        f"(first untimed), {size['repeats']} repeats per side, {args.threads} torch thread(s); "
        f"TRL {trl.__version__}, transformers {transformers.__version__}; {minutes:.1f} minutes"
    )
    print(f"\n{'side':<20} {'pairs/s':>8}")
    for side, value in summary.items():
        print(f"{side:<20} {value:>8.2f}")
    if ratio is not None:
        print(f"ratio alignlab / trl: {ratio:.2f} (goal >= {GOAL})")
    RESULTS.mkdir(exist_ok=True)
    name = "prefs_throughput_full" if args.size == "full" else "prefs_throughput"  # full beside default
    png = RESULTS / f"{name}.png"
    plot(summary, per_repeat, png, f"ranked-preference training, {layers}, {size['max_tokens']} tokens")
    write(
        name,
        {
            "size": args.size,
            "size_described": described,
            "settings": {**size, "lr": LR, "seed": args.seed, "threads": args.threads},
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "pairs_per_second": summary,
            "pairs_per_second_repeats": per_repeat,
            "step_seconds": steps,
            "token_slots_in_timed_steps": tokens,
            "ratio": ratio,
            "goal_ratio": GOAL,
            "meets_goal": ratio is not None and ratio >= GOAL,
            "plot": str(png.relative_to(RESULTS.parent)),
            "minutes": minutes,
            "same_work": (
                "same backbone, tokens, batches and order, float32, AdamW at a constant lr, clipping at 1.0; "
                "TRL without gradient checkpointing, bf16, logging, evaluation or saves. TRL still computes "
                "its per-step reward metrics inside compute_loss, as it always does."
            ),
        },
    )


if __name__ == "__main__":
    main()
