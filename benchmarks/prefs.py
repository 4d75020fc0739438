"""Preference models three ways, with and without PMP: accuracy on HH harmless held-out and on HHH.

Same backbone, data, steps and learning rate for every condition:

* ranked, binary and imitation objectives trained on the HH harmless train split;
* ranked and binary PMP on Stack Exchange answer pairs, each followed by fine-tuning on the
  same HH data (ranked objective by default; ``--pmp-objectives all`` for all three);
* accuracy with Wilson 95% intervals on the HH held-out split (hash of the first human
  turn) and on all 221 BIG-bench hhh_alignment pairs, beside the "longer answer wins" rule.

Resumable: the PMP models and one results line per (seed, condition) are kept in ``--work``
as each finishes; rerunning the same command skips what is done (``--fresh`` starts over).
The JSON and plot give each condition's mean and spread over seeds, and the Wilson interval a
single run's test set allows at that mean (the seeds score the same pairs, so their
comparisons are not independent and are not pooled).

The default size takes about 15 minutes per seed on two CPU cores, one torch thread: the embedded
SmolLM2-135M cut to its first few layers, 128-token sequences, a few hundred pairs. That is far
below the paper's scale, so expect accuracies near chance; the JSON says so beside them.
``--size full`` (all 30 layers, 256 tokens, the whole train split) is for a GPU.

    python benchmarks/prefs.py [--size smoke|default|full] [--seeds 0 1 2] [--work DIR] [--replot]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from common import RESULTS, open_work, write

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
    "full": {
        "layers": 0,
        "max_tokens": 256,
        "train_pairs": 0,
        "test_pairs": 0,
        "hhh_limit": 0,
        "steps": 450,
        "pmp_steps": 500,
        "batch_size": 8,
        "lr": 1e-5,
        "pmp_lr": 3e-5,
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
    train, test = split(hh, "train"), split(hh, "test")
    return {
        "train": train[: size["train_pairs"]] if size["train_pairs"] else train,
        "test": test[: size["test_pairs"]] if size["test_pairs"] else test,
        "hhh": hhh[: size["hhh_limit"]] if size["hhh_limit"] else hhh,
        "pmp": se_pairs[: size["pmp_steps"] * size["batch_size"]],
    }


def evaluate(pm: Any, data: dict[str, Any]) -> dict[str, Any]:
    from alignlab.prefs.hhh import evaluate_pm

    hh = evaluate_pm(pm, data["test"], "hh-harmless held-out", batch_size=16)
    hhh = evaluate_pm(pm, data["hhh"], "hhh", batch_size=16)
    return {"hh_harmless": asdict(hh.overall()), "hhh": [asdict(r) for r in hhh.rows]}


def run_condition(name: str, config: Any, rankings: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    import shutil

    from alignlab.prefs.train import train

    start = time.perf_counter()
    result = train(config, rankings)
    seconds = time.perf_counter() - start
    scores = evaluate(result.model, data)
    shutil.rmtree(config.out, ignore_errors=True)
    record = {
        "condition": name,
        "objective": config.objective,
        "model": config.model,
        "steps": config.steps,
        "loss_first3": statistics.fmean(result.losses[:3]),
        "loss_last3": statistics.fmean(result.losses[-3:]),
        "train_seconds": seconds,
        "truncation": result.notes,
        **scores,
    }
    print(
        f"{name:<22} seed {config.seed}  HH {scores['hh_harmless']['accuracy']:.3f}  "
        f"HHH {overall_of(scores, 'hhh')['accuracy']:.3f}  "
        f"loss {record['loss_first3']:.3f} -> {record['loss_last3']:.3f}  ({seconds:.0f} s)",
        flush=True,
    )
    return record


def pretrained(
    kind: str, seed: int, base: Any, data: dict[str, Any], size: dict[str, Any], work: Path
) -> Path:
    """The PMP model of ``kind`` for ``seed``: trained once in ``work``, then reused."""
    from alignlab.prefs.objectives import binary_pmp
    from alignlab.prefs.train import train

    output = work / f"pmp-{kind}-seed{seed}"
    if not (output / "model" / "preference_model.json").is_file():
        pairs = binary_pmp(data["pmp"]) if kind == "binary" else data["pmp"]
        config = replace(
            base, objective="ranked", steps=size["pmp_steps"], lr=size["pmp_lr"], out=str(output)
        )
        result = train(config, pairs)
        (output / "pmp_loss.json").write_text(
            json.dumps(
                {"first3": statistics.fmean(result.losses[:3]), "last3": statistics.fmean(result.losses[-3:])}
            )
        )
    return output / "model"


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per condition and suite: mean and spread over seeds, and one run's Wilson interval at the mean."""
    from alignlab.core.intervals import wilson

    rows = []
    for condition in dict.fromkeys(r["condition"] for r in records):
        runs = [r for r in records if r["condition"] == condition]
        row: dict[str, Any] = {"condition": condition, "seeds": sorted(r["seed"] for r in runs)}
        for key in ("hh_harmless", "hhh"):
            overall = [overall_of(r, key) for r in runs]
            accuracy = [o["accuracy"] for o in overall]
            mean, n = statistics.fmean(accuracy), int(overall[0]["n"])
            row[key] = {
                "mean": mean,
                "sd": statistics.stdev(accuracy) if len(runs) > 1 else 0.0,
                "per_seed": accuracy,
                "pairs": n,
                "one_run_wilson95": wilson(round(mean * n), n),
            }
        rows.append(row)
    return rows


def overall_of(record: dict[str, Any], key: str) -> dict[str, Any]:
    """The all-pairs row of one run on ``key`` (``hh_harmless`` or ``hhh``)."""
    if key == "hh_harmless":
        return dict(record[key])
    return dict(next(x for x in record[key] if x["subset"] == "all"))


def plot(rows: list[dict[str, Any]], baselines: dict[str, float], hhh_pairs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["condition"] for r in rows]
    seeds = len(rows[0]["seeds"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    panels = ((axes[0], "hh_harmless", "HH harmless held-out"), (axes[1], "hhh", f"HHH ({hhh_pairs} pairs)"))
    lowest = 0.5
    for ax, key, title in panels:
        mean = [r[key]["mean"] for r in rows]
        ax.bar(range(len(names)), mean, yerr=[r[key]["sd"] for r in rows], capsize=4, color="#4c72b0")
        for i, row in enumerate(rows):
            ax.scatter([i] * len(row[key]["per_seed"]), row[key]["per_seed"], color="black", s=10, zorder=3)
            lowest = min(lowest, *row[key]["per_seed"])
        ax.axhline(0.5, color="grey", linestyle=":", label="chance")
        ax.axhline(baselines[key], color="#dd8452", linestyle="--", label="longer answer wins")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylim(max(0.0, lowest - 0.05), 0.9)
    axes[0].set_ylabel(f"pairwise accuracy (mean ± sd, dots: {seeds} seeds)")
    fig.suptitle("Preference objectives and PMP at benchmark size (see prefs.json for the size)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replot() -> None:
    """Redraw prefs.png from prefs.json."""
    record = json.loads((RESULTS / "prefs.json").read_text())
    plot(
        record["summary"],
        record["baselines"]["longer_answer_wins"],
        record["hhh_pairs"],
        RESULTS / "prefs.png",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pmp-objectives", choices=["ranked", "all"], default="ranked")
    parser.add_argument("--work", default="", help="folder for PMP models and results (default runs/...)")
    parser.add_argument("--fresh", action="store_true", help="discard the results in --work first")
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
    from alignlab.prefs.train import TrainConfig

    size = SIZES[args.size]
    data_dir = str(data_root(args.data_dir or None))
    work = Path(args.work or f"runs/benchmarks/prefs-{args.size}")
    results = open_work(
        work, {**size, "pmp_objectives": args.pmp_objectives}, args.fresh, ("seed", "condition")
    )
    objectives = ("ranked", "binary", "imitation")
    pmp_objectives = objectives if args.pmp_objectives == "all" else ("ranked",)
    started = time.perf_counter()
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
            checkpoint_every=max(1, size["steps"] // 4),
            resume=True,
        )
        plan = [("none", objective) for objective in objectives]
        plan += [(kind, objective) for kind in ("ranked", "binary") for objective in pmp_objectives]
        for kind, objective in plan:
            name = objective if kind == "none" else f"{kind} PMP + {objective}"
            if results.key_of({"seed": seed, "condition": name}) in results:
                continue
            config = replace(base, objective=objective, out=str(work / f"seed{seed}-{kind}-{objective}"))
            if kind != "none":
                config = replace(config, model=str(pretrained(kind, seed, base, data, size, work)), layers=0)
            record = run_condition(name, config, data["train"], data)
            if kind != "none":
                loss = json.loads((work / f"pmp-{kind}-seed{seed}" / "pmp_loss.json").read_text())
                record["pmp_loss_first3"], record["pmp_loss_last3"] = loss["first3"], loss["last3"]
                record["model"] = f"WORK/pmp-{kind}-seed{seed}/model"
            results.append({"seed": seed, "pmp": kind, **record})
    invocation = (time.perf_counter() - started) / 60
    records = [r for r in results.records() if r["seed"] in args.seeds]
    summary = summarise(records)
    zeros = lambda rs: [[0.0] * len(r.responses) for r in rs]  # noqa: E731
    baselines = {
        "hh_harmless": report("hh", "longer", data["test"], zeros(data["test"])).overall().longer_wins,
        "hhh": report("hhh", "longer", data["hhh"], zeros(data["hhh"])).overall().longer_wins,
    }
    print(f"\n{'condition':<22} {'HH mean':>8} {'sd':>6} {'HHH mean':>9} {'sd':>6}")
    for row in summary:
        hh, hhh = row["hh_harmless"], row["hhh"]
        print(
            f"{row['condition']:<22} {hh['mean']:>8.3f} {hh['sd']:>6.3f}"
            f" {hhh['mean']:>9.3f} {hhh['sd']:>6.3f}"
        )
    png = RESULTS / "prefs.png"
    RESULTS.mkdir(exist_ok=True)
    hhh_pairs = sum(len(r.pairs()) for r in data["hhh"])
    plot(summary, baselines, hhh_pairs, png)
    minutes = sum(r["train_seconds"] for r in records) / 60
    layers = f"cut to its first {size['layers']} of 30 layers" if size["layers"] else "all 30 layers"
    described = (
        f"SmolLM2-135M-Instruct, {layers}, full fine-tuning, "
        f"{size['max_tokens']}-token sequences; {len(data['train'])} HH harmless train pairs, "
        f"{size['steps']} steps x {size['batch_size']} pairs at lr {size['lr']}; PMP: "
        f"{len(data['pmp'])} Stack Exchange pairs, {size['pmp_steps']} steps; evaluated on "
        f"{len(data['test'])} HH held-out pairs and {hhh_pairs} HHH pairs; "
        f"seeds {args.seeds}; {args.threads} torch thread(s); "
        f"{minutes:.1f} minutes of training on this machine, PMP and evaluation not counted"
    )
    write(
        "prefs",
        {
            "size": args.size,
            "size_described": described,
            "settings": size,
            "split": "HH harmless-base test file split by SHA-256 of the first human turn, 20% held out",
            "baselines": {"longer_answer_wins": baselines, "chance": 0.5},
            "hhh_pairs": hhh_pairs,
            "summary": summary,
            "conditions": records,
            "plot": str(png.relative_to(RESULTS.parent)),
            "minutes_training": minutes,
            "minutes_this_invocation": invocation,
            "honesty": (
                "Far below the paper's scale (models up to 52B, 100k+ pairs): few seeds, a truncated 135M "
                "backbone and a few hundred pairs. Differences inside the seed spread and the intervals "
                "are noise."
            ),
        },
    )


if __name__ == "__main__":
    main()
