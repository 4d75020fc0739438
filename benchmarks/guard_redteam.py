"""Red teaming with garak: attack success per probe family, guarded beside unguarded, in one run.

Starts ``alignlab serve --model smollm2`` twice on free 127.0.0.1 ports — with ``--guard
none`` and with ``--guard default`` — and runs the shipped garak suite (``alignlab guard
redteam --suite garak``) against both. garak is installed on first use into its own
environment under the alignlab cache. Writes ``results/guard_redteam.json`` and
``results/guard_redteam.png``; garak's own reports stay under the alignlab cache (they hold
the attack prompts, which are for red teaming only).

    python benchmarks/guard_redteam.py [--max-prompts 8] [--generations 1] [--max-tokens 128]

A dry run on the scripted model (no weights, no guard) checks the plumbing in a minute:

    python benchmarks/guard_redteam.py --model "scripted:Sure, here it is." --guard none --max-prompts 1
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import RESULTS, guard_stamp, served, write

from alignlab.guard.redteam import RedTeamConfig, output_folder, run_redteam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="model spec both servers serve")
    parser.add_argument("--guard", default="default", help="guard of the guarded server")
    parser.add_argument("--max-prompts", type=int, default=8, help="most prompts per probe")
    parser.add_argument("--generations", type=int, default=1, help="outputs asked per prompt")
    parser.add_argument("--max-tokens", type=int, default=128, help="completion tokens per prompt")
    parser.add_argument("--parallel", type=int, default=4, help="attempts garak sends at once")
    parser.add_argument("--probes", nargs="*", default=[], help="garak probes (default: the suite's)")
    args = parser.parse_args()
    with (
        served("--model", args.model, "--guard", "none") as unguarded,
        served("--model", args.model, "--guard", args.guard) as guarded,
    ):
        config = RedTeamConfig(
            target=guarded,
            baseline=unguarded,
            probes=tuple(args.probes),
            generations=args.generations,
            max_prompts=args.max_prompts,
            max_tokens=args.max_tokens,
            parallel=args.parallel,
        )
        report = run_redteam(config)
    shutil.copyfile(output_folder(config) / "redteam.png", Path(RESULTS) / "guard_redteam.png")
    write(
        "guard_redteam",
        {
            "model": args.model,
            "guard": args.guard,
            "guard_sha256_16": guard_stamp(args.guard) if args.guard != "none" else None,
            "suite": report["suite"],
            "garak_version": report["garak_version"],
            "aggregation": report["aggregation"],
            "families": report["families"],
            "targets": {
                name: {key: target[key] for key in ("settings", "garak_s", "families", "probes")}
                for name, target in report["targets"].items()
            },
        },
    )


if __name__ == "__main__":
    main()
