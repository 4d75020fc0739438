"""Preference models three ways, with and without PMP: accuracy on HH harmless held-out and on HHH.

Same backbone, data, steps and learning rate for every condition:

* ranked, binary and imitation objectives trained on the HH harmless train split;
* ranked and binary PMP on Stack Exchange answer pairs, each followed by fine-tuning on the
  same HH data (ranked objective by default; ``--pmp-objectives all`` for all three);
* accuracy with Wilson 95% intervals on the HH held-out split (hash of the first human
  turn) and on all 221 BIG-bench hhh_alignment pairs, beside the "longer answer wins" rule;
* training speed with and without shared-context batching.

The default size fits about 15 minutes on two CPU cores, one torch thread: the embedded SmolLM2-135M cut
to its first few layers, 128-token sequences, a few hundred pairs, one seed. That is far
below the paper's scale, so expect accuracies near chance; the JSON says so beside them.

    python benchmarks/prefs.py [--size smoke|default] [--data-dir ../shared/data] [--seeds 0 1 2] [--replot]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from common import RESULTS, write

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "layers": 2,
        "max_tokens": 64,
        "train_pairs": 32,
        "test_pairs": 32,
        "hhh_limit": 20,
        "steps": 4,
        "pmp_steps": 4,
        "batch_size": 4,
        "lr": 5e-5,
        "pmp_lr": 5e-5,
    },
    "default": {
        "layers": 4,
        "max_tokens": 128,
        "train_pairs": 256,
        "test_pairs": 200,
        "hhh_limit": 0,
        "steps": 32,
        "pmp_steps": 32,
        "batch_size": 8,
        "lr": 5e-5,
        "pmp_lr": 5e-5,
    },
}


def load_data(data_dir: str, size: dict[str, Any], seed: int) -> dict[str, Any]:
    from alignlab.prefs.data import flatten_pairs, load_source, pair, split

    hh = load_source("hh-harmless", data_dir).rankings
    hhh = load_source("hhh", data_dir).rankings
    se = load_source("stackexchange", data_dir).rankings
    se_pairs = [
        pair(r.context, r.responses[w], r.responses[lose], group=r.group, source=r.source)
        for r, w, lose in flatten_pairs(se)
    ]
    random.Random(seed).shuffle(se_pairs)
    return {
        "train": split(hh, "train")[: size["train_pairs"]],
        "test": split(hh, "test")[: size["test_pairs"]],
        "hhh": hhh[: size["hhh_limit"]] if size["hhh_limit"] else hhh,
        "pmp": se_pairs[: size["pmp_steps"] * size["batch_size"]],
    }


def evaluate(pm: Any, data: dict[str, Any]) -> dict[str, Any]:
    from alignlab.prefs.hhh import evaluate_pm

    hh = evaluate_pm(pm, data["test"], "hh-harmless held-out", batch_size=16)
    hhh = evaluate_pm(pm, data["hhh"], "hhh", batch_size=16)
    return {"hh_harmless": asdict(hh.overall()), "hhh": [asdict(r) for r in hhh.rows]}


def run_condition(name: str, config: Any, rankings: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    from alignlab.prefs.train import train

    start = time.perf_counter()
    result = train(config, rankings)
    seconds = time.perf_counter() - start
    scores = evaluate(result.model, data)
    record = {
        "condition": name,
        "objective": config.objective,
        "model": config.model,
        "steps": config.steps,
        "loss_first3": sum(result.losses[:3]) / 3,
        "loss_last3": sum(result.losses[-3:]) / 3,
        "train_seconds": seconds,
        "truncation": result.notes,
        **scores,
    }
    hhh_all = next(r for r in scores["hhh"] if r["subset"] == "all")
    print(
        f"{name:<28} HH {scores['hh_harmless']['accuracy']:.3f}  HHH {hhh_all['accuracy']:.3f}  "
        f"loss {record['loss_first3']:.3f} -> {record['loss_last3']:.3f}  ({seconds:.0f} s)",
        flush=True,
    )
    return record


def shared_context_speed(base: Any, rankings: list[Any], steps: int = 3) -> dict[str, float]:
    """Seconds per training step with and without shared-context batching (same pairs)."""
    from alignlab.prefs.model import PreferenceModel
    from alignlab.prefs.objectives import OBJECTIVES

    pm = PreferenceModel.build(base.model_config())
    loss_fn = OBJECTIVES.get("ranked").loss
    timings = {}
    for shared in (True, False, True, False):  # twice each, keep the second (warm) timing
        start = time.perf_counter()
        for step in range(steps):
            batch = pm.batch(rankings[step * base.batch_size : (step + 1) * base.batch_size], shared=shared)
            loss_fn(pm.forward(batch), batch).backward()
        timings["shared" if shared else "unshared"] = (time.perf_counter() - start) / steps
    return {"seconds_per_step_shared": timings["shared"], "seconds_per_step_unshared": timings["unshared"]}


def plot(records: list[dict[str, Any]], baselines: dict[str, float], hhh_pairs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["condition"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    panels = ((axes[0], "hh_harmless", "HH harmless held-out"), (axes[1], "hhh", f"HHH ({hhh_pairs} pairs)"))
    lowest = 0.5
    for ax, key, title in panels:
        rows = [
            r[key] if key == "hh_harmless" else next(x for x in r[key] if x["subset"] == "all")
            for r in records
        ]
        acc = [row["accuracy"] for row in rows]
        below = [a - row["low"] for a, row in zip(acc, rows, strict=True)]
        above = [row["high"] - a for a, row in zip(acc, rows, strict=True)]
        lowest = min(lowest, *(row["low"] for row in rows))
        ax.bar(range(len(names)), acc, yerr=[below, above], capsize=4, color="#4c72b0")
        ax.axhline(0.5, color="grey", linestyle=":", label="chance")
        ax.axhline(baselines[key], color="#dd8452", linestyle="--", label="longer answer wins")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylim(max(0.0, lowest - 0.05), 0.9)
    axes[0].set_ylabel("pairwise accuracy (95% Wilson CI)")
    fig.suptitle("Preference objectives and PMP at benchmark size (see prefs.json for the size)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replot() -> None:
    """Redraw prefs.png from prefs.json (first seed)."""
    import json

    record = json.loads((RESULTS / "prefs.json").read_text())
    first = record["conditions"][0]["seed"]
    hhh_pairs = next(r["n"] for r in record["conditions"][0]["hhh"] if r["subset"] == "all")
    rows = [r for r in record["conditions"] if r["seed"] == first]
    plot(rows, record["baselines"]["longer_answer_wins"], hhh_pairs, RESULTS / "prefs.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pmp-objectives", choices=["ranked", "all"], default="ranked")
    parser.add_argument("--replot", action="store_true", help="only redraw prefs.png from prefs.json")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (on a busy 2-core machine 2 threads spin-wait)"
    )
    args = parser.parse_args()
    if args.replot:
        replot()
        return
    import torch

    torch.set_num_threads(args.threads)

    from alignlab.prefs.data import data_root
    from alignlab.prefs.hhh import report
    from alignlab.prefs.objectives import binary_pmp
    from alignlab.prefs.train import TrainConfig, train

    size = SIZES[args.size]
    data_dir = str(data_root(args.data_dir or None))
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="prefs-bench-") as tmp:
        for seed in args.seeds:
            data = load_data(data_dir, size, seed)
            base = TrainConfig(
                model="smollm2",
                layers=size["layers"],
                max_tokens=size["max_tokens"],
                steps=size["steps"],
                batch_size=size["batch_size"],
                lr=size["lr"],
                seed=seed,
                checkpoint_every=0,
                resume=False,
            )
            if seed == args.seeds[0]:
                speed = shared_context_speed(base, data["train"])
                print(f"shared-context speed: {speed}", flush=True)
                shared = speed["seconds_per_step_shared"] <= speed["seconds_per_step_unshared"]
            base = replace(base, shared_context=shared)
            for objective in ("ranked", "binary", "imitation"):
                config = replace(base, objective=objective, output=f"{tmp}/{seed}/{objective}")
                records.append(
                    {
                        "seed": seed,
                        "pmp": "none",
                        **run_condition(f"{objective}", config, data["train"], data),
                    }
                )
            for kind, pmp_data in (("ranked", data["pmp"]), ("binary", binary_pmp(data["pmp"]))):
                pretrain = replace(
                    base,
                    objective="ranked",
                    steps=size["pmp_steps"],
                    lr=size["pmp_lr"],
                    output=f"{tmp}/{seed}/pmp-{kind}",
                )
                first = train(pretrain, pmp_data)
                objectives = (
                    ("ranked", "binary", "imitation") if args.pmp_objectives == "all" else ("ranked",)
                )
                for objective in objectives:
                    config = replace(
                        base,
                        model=str(first.output / "model"),
                        layers=0,
                        objective=objective,
                        output=f"{tmp}/{seed}/{kind}-{objective}",
                    )
                    record = run_condition(f"{kind} PMP + {objective}", config, data["train"], data)
                    record["pmp_loss_first3"] = sum(first.losses[:3]) / 3
                    record["pmp_loss_last3"] = sum(first.losses[-3:]) / 3
                    records.append({"seed": seed, "pmp": kind, **record})
        zeros = lambda rs: [[0.0] * len(r.responses) for r in rs]  # noqa: E731
        baselines = {
            "hh_harmless": report("hh", "longer", data["test"], zeros(data["test"])).overall().longer_wins,
            "hhh": report("hhh", "longer", data["hhh"], zeros(data["hhh"])).overall().longer_wins,
        }
    minutes = (time.perf_counter() - started) / 60
    png = RESULTS / "prefs.png"
    RESULTS.mkdir(exist_ok=True)
    hhh_pairs = sum(len(r.pairs()) for r in data["hhh"])
    plot([r for r in records if r["seed"] == args.seeds[0]], baselines, hhh_pairs, png)
    described = (
        f"SmolLM2-135M-Instruct cut to its first {size['layers']} of 30 layers, full fine-tuning, "
        f"{size['max_tokens']}-token sequences; {len(data['train'])} HH harmless train pairs, "
        f"{size['steps']} steps x {size['batch_size']} pairs at lr {size['lr']}; PMP: "
        f"{len(data['pmp'])} Stack Exchange pairs, {size['pmp_steps']} steps; evaluated on "
        f"{len(data['test'])} HH held-out pairs and {hhh_pairs} HHH pairs; "
        f"seeds {args.seeds}; {args.threads} torch thread(s); {minutes:.1f} minutes on this machine"
    )
    write(
        "prefs",
        {
            "size": args.size,
            "size_described": described,
            "settings": size,
            "shared_context": speed,
            "split": "HH harmless-base test file split by SHA-256 of the first human turn, 20% held out",
            "baselines": {"longer_answer_wins": baselines, "chance": 0.5},
            "conditions": records,
            "plot": str(png.relative_to(RESULTS.parent)),
            "minutes": minutes,
            "honesty": (
                "Far below the paper's scale (models up to 52B, 100k+ pairs): few seeds, a truncated 135M "
                "backbone and a few hundred pairs. Differences inside the confidence intervals are noise."
            ),
        },
    )


if __name__ == "__main__":
    main()
