"""PMP sample efficiency: HH held-out accuracy after fine-tuning on 125 to all pairs, with and without PMP.

Three conditions share a backbone, fine-tuning recipe and evaluation: no PMP, ranked PMP and
binary PMP (Stack Exchange answer pairs, as in Askell et al. 2021), each fine-tuned with the
ranked objective on N HH harmless train pairs for ``epochs`` passes at a constant learning rate,
then scored on the same HH held-out pairs (Wilson 95% intervals per run; mean and spread over
seeds per point). Seed s shuffles the train pool (the N pairs are its first N, so the sets are
nested), orders the steps and draws the new head of the no-PMP runs; each PMP kind runs once
per seed, and every size of that seed fine-tunes from the same PMP model.

Resumable: the PMP models and one results line per (condition, pairs, seed) are kept in
``--work`` as each finishes; rerunning the same command skips what is done. ``--fresh`` starts
over. The default size stops at 1,000 pairs and takes about 30 minutes with one torch thread
on a two-core machine whose other core is busy (measured here at the default settings: ~0.08 s
per fine-tuning pair, ~50 s per PMP run); ``--size full`` adds "all" (the whole train split,
~1,800 pairs), a 4-layer cut and 128-token sequences, for a real run of a few hours.

    python benchmarks/prefs_pmp.py [--size smoke|default|full] [--seeds 0 1 2] [--work DIR] [--replot]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import RESULTS, open_work, write

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "layers": 2,
        "max_tokens": 48,
        "batch_size": 4,
        "lr": 5e-5,
        "epochs": 1,
        "pairs": [8, 0],
        "pool": 16,
        "test_pairs": 24,
        "pmp_steps": 3,
        "pmp_lr": 5e-5,
    },
    "default": {
        "layers": 2,
        "max_tokens": 64,
        "batch_size": 16,
        "lr": 5e-5,
        "epochs": 1,
        "pairs": [125, 250, 500, 1000],
        "pool": 0,
        "test_pairs": 200,
        "pmp_steps": 32,
        "pmp_lr": 5e-5,
    },
    "full": {
        "layers": 4,
        "max_tokens": 128,
        "batch_size": 16,
        "lr": 5e-5,
        "epochs": 1,
        "pairs": [125, 250, 500, 1000, 0],
        "pool": 0,
        "test_pairs": 0,
        "pmp_steps": 128,
        "pmp_lr": 5e-5,
    },
}
CONDITIONS = ("none", "ranked", "binary")
HONESTY = (
    "At this scale (a cut 135M backbone, hundreds to a few thousand Stack Exchange pairs for PMP "
    "instead of millions, 125 to ~1,800 fine-tuning pairs, few seeds) the PMP gain may be within noise: "
    "read a difference as real only where the seed spread and the Wilson intervals leave no overlap."
)


def load_data(data_dir: str, size: dict[str, Any]) -> dict[str, Any]:
    from alignlab.prefs.data import load_source, split

    hh = load_source("hh-harmless", data_dir).rankings
    pool = split(hh, "train")
    test = split(hh, "test")
    return {
        "pool": pool[: size["pool"]] if size["pool"] else pool,
        "test": test[: size["test_pairs"]] if size["test_pairs"] else test,
        "stackexchange": load_source("stackexchange", data_dir).rankings,
    }


def base_config(size: dict[str, Any], seed: int, output: Path) -> Any:
    from alignlab.prefs.train import TrainConfig

    return TrainConfig(
        model="smollm2",
        layers=size["layers"],
        max_tokens=size["max_tokens"],
        batch_size=size["batch_size"],
        lr=size["lr"],
        seed=seed,
        objective="ranked",
        checkpoint_every=0,
        resume=False,
        out=str(output),
    )


def pretrained(kind: str, seed: int, size: dict[str, Any], data: dict[str, Any], work: Path) -> Path:
    """The PMP model of ``kind`` for ``seed``: trained once, then reused (and resumed if cut off)."""
    from dataclasses import replace

    from alignlab.prefs.data import flatten_pairs, pair
    from alignlab.prefs.objectives import binary_pmp
    from alignlab.prefs.train import train

    output = work / f"pmp-{kind}-seed{seed}"
    if (output / "model" / "preference_model.json").is_file():
        return output / "model"
    pairs = [
        pair(r.context, r.responses[w], r.responses[lose], group=r.group, source=r.source)
        for r, w, lose in flatten_pairs(data["stackexchange"])
    ]
    random.Random(seed).shuffle(pairs)
    pairs = pairs[: size["pmp_steps"] * size["batch_size"]]
    config = replace(
        base_config(size, seed, output),
        steps=size["pmp_steps"],
        lr=size["pmp_lr"],
        checkpoint_every=max(1, size["pmp_steps"] // 4),
        resume=True,
    )
    started = time.perf_counter()
    # Binary PMP sees half as many source pairs, each as two labelled rankings: the same compute.
    result = train(config, binary_pmp(pairs) if kind == "binary" else pairs)
    seconds = time.perf_counter() - started
    print(f"PMP {kind:<6} seed {seed}: {seconds:.0f} s", flush=True)
    pmp_log(work).append(
        {
            "kind": kind,
            "seed": seed,
            "source_pairs": len(pairs),
            "steps": config.steps,
            "loss_first3": statistics.fmean(result.losses[:3]),
            "loss_last3": statistics.fmean(result.losses[-3:]),
            "seconds": seconds,
            "resumed_from": result.resumed_from,
        }
    )
    return output / "model"


def pmp_log(work: Path) -> Any:
    from alignlab.core.results import ResultsFile

    return ResultsFile(work / "pmp.jsonl", ("kind", "seed"))


def fine_tune(
    condition: str, n: int, seed: int, size: dict[str, Any], data: dict[str, Any], work: Path
) -> dict[str, Any]:
    """Fine-tune on the first ``n`` pairs of the seed's shuffle of the pool; score on the test pairs."""
    from dataclasses import replace

    from alignlab.prefs.hhh import evaluate_pm
    from alignlab.prefs.train import train

    pool = list(data["pool"])
    random.Random(seed).shuffle(pool)
    chosen = pool[:n]
    steps = max(1, -(-size["epochs"] * n // size["batch_size"]))
    output = work / "finetune" / f"{condition}-{n}-seed{seed}"
    config = replace(base_config(size, seed, output), steps=steps)
    if condition != "none":
        config = replace(config, model=str(pretrained(condition, seed, size, data, work)), layers=0)
    started = time.perf_counter()
    result = train(config, chosen)
    seconds = time.perf_counter() - started
    report = evaluate_pm(result.model, data["test"], "hh-harmless held-out", batch_size=16)
    shutil.rmtree(output, ignore_errors=True)
    return {
        "condition": condition,
        "pairs": n,
        "seed": seed,
        "steps": steps,
        "loss_first3": statistics.fmean(result.losses[:3]),
        "loss_last3": statistics.fmean(result.losses[-3:]),
        "train_seconds": seconds,
        "seconds": time.perf_counter() - started,
        "truncation": result.notes,
        **asdict(report.overall()),
    }


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (condition, pairs): mean and spread over seeds, and one run's Wilson interval at the mean
    (every seed scores the same test pairs, so their comparisons are not pooled)."""
    from alignlab.core.intervals import wilson

    points = []
    for condition in CONDITIONS:
        for n in sorted({r["pairs"] for r in records}):
            runs = [r for r in records if r["condition"] == condition and r["pairs"] == n]
            if not runs:
                continue
            accuracy = [r["accuracy"] for r in runs]
            mean, test = statistics.fmean(accuracy), int(runs[0]["n"])
            points.append(
                {
                    "condition": condition,
                    "pairs": n,
                    "seeds": sorted(r["seed"] for r in runs),
                    "mean": mean,
                    "sd": statistics.stdev(accuracy) if len(runs) > 1 else 0.0,
                    "min": min(accuracy),
                    "max": max(accuracy),
                    "one_run_wilson95": wilson(round(mean * test), test),
                }
            )
    return points


def plot(points: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = {"none": ("no PMP", "#4c72b0", 0.96), "ranked": ("ranked PMP", "#55a868", 1.0)}
    styles["binary"] = ("binary PMP", "#dd8452", 1.04)
    for condition, (label, colour, shift) in styles.items():
        rows = [p for p in points if p["condition"] == condition]
        if rows:
            ax.errorbar(
                [p["pairs"] * shift for p in rows],  # a small shift keeps the error bars apart
                [p["mean"] for p in rows],
                yerr=[p["sd"] for p in rows],
                label=label,
                color=colour,
                marker="o",
                capsize=3,
            )
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ticks = sorted({p["pairs"] for p in points})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("HH fine-tuning pairs")
    ax.set_ylabel("HH held-out accuracy (mean ± sd over seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default="", help="folder for PMP models and results (default runs/...)")
    parser.add_argument("--fresh", action="store_true", help="discard the results in --work first")
    parser.add_argument("--replot", action="store_true", help="only redraw prefs_pmp.png from prefs_pmp.json")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (on a busy 2-core machine 2 threads spin-wait)"
    )
    args = parser.parse_args()
    png = RESULTS / "prefs_pmp.png"
    if args.replot:
        record = json.loads((RESULTS / "prefs_pmp.json").read_text())
        plot(record["points"], png, record["plot_title"])
        return
    import torch

    torch.set_num_threads(args.threads)
    from alignlab.prefs.data import data_root

    size = SIZES[args.size]
    data = load_data(str(data_root(args.data_dir or None)), size)
    sizes = sorted(n if n else len(data["pool"]) for n in size["pairs"])
    work = Path(args.work or f"runs/benchmarks/prefs_pmp-{args.size}")
    results = open_work(
        work, {**size, "pool_pairs": len(data["pool"])}, args.fresh, ("condition", "pairs", "seed")
    )
    started = time.perf_counter()
    for seed in args.seeds:
        for condition in CONDITIONS:
            for n in sizes:
                if results.key_of({"condition": condition, "pairs": n, "seed": seed}) in results:
                    continue
                record = fine_tune(condition, n, seed, size, data, work)
                results.append(record)
                print(
                    f"{condition:<7} {n:>5} pairs  seed {seed}  accuracy {record['accuracy']:.3f} "
                    f"[{record['low']:.3f}, {record['high']:.3f}]  ({record['train_seconds']:.0f} s)",
                    flush=True,
                )
    invocation = (time.perf_counter() - started) / 60
    records = [r for r in results.records() if r["seed"] in args.seeds and r["pairs"] in sizes]
    pmp = [r for r in pmp_log(work).records() if r["seed"] in args.seeds]
    minutes = sum(r["seconds"] for r in [*records, *pmp]) / 60
    points = summarise(records)
    print(f"\n{'condition':<10} {'pairs':>6} {'mean':>7} {'sd':>6} {'one run 95% CI':>17}")
    for p in points:
        low, high = p["one_run_wilson95"]
        print(
            f"{p['condition']:<10} {p['pairs']:>6} {p['mean']:>7.3f} {p['sd']:>6.3f}"
            f"   [{low:.3f}, {high:.3f}]"
        )
    layers = f"first {size['layers']} of 30 layers" if size["layers"] else "all 30 layers"
    title = f"PMP sample efficiency: SmolLM2-135M, {layers}, {len(data['test'])} held-out pairs"
    RESULTS.mkdir(exist_ok=True)
    plot(points, png, title)
    write(
        "prefs_pmp",
        {
            "size": args.size,
            "size_described": (
                f"SmolLM2-135M-Instruct cut to its {layers}, full fine-tuning, {size['max_tokens']}-token "
                f"sequences, {size['batch_size']} pairs per step at lr {size['lr']} for {size['epochs']} "
                f"epoch(s) on {sizes} HH harmless train pairs (of {len(data['pool'])}); PMP "
                f"{size['pmp_steps']} steps on Stack Exchange pairs at lr {size['pmp_lr']}, once per seed; "
                f"{len(data['test'])} HH held-out pairs; seeds {args.seeds}; {args.threads} torch thread(s); "
                f"{minutes:.1f} minutes of PMP, fine-tuning and evaluation on this machine"
            ),
            "settings": size,
            "split": "HH harmless-base test file split by SHA-256 of the first human turn, 20% held out",
            "points": points,
            "runs": records,
            "pmp": pmp,
            "plot": str(png.relative_to(RESULTS.parent)),
            "plot_title": title,
            "minutes": minutes,
            "minutes_this_invocation": invocation,
            "honesty": HONESTY,
        },
    )


if __name__ == "__main__":
    main()
