"""Our version of the Constitutional Classifiers++ Table 1, on data the guard never trained on.

Runs ``alignlab guard eval`` for the default guard (per-exchange scores and generated text stay
in the user cache, never in the repository) and writes the table — compute relative to the
exchange classifier, recall, attack success on held-out families, benign flag rate,
over-refusal — with its plots to ``benchmarks/results/``.

    python benchmarks/guard_table.py [--max-per-set 40]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import RESULTS, guard_stamp, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-per-set", type=int, default=40)
    parser.add_argument("--guard", default="default")
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data-dir", type=Path, default=root.parent / "shared" / "data")
    args = parser.parse_args()
    from alignlab.models.embedded import cache_root

    out = cache_root() / "guard" / "default" / f"eval-{args.max_per_set}"
    command = [
        sys.executable,
        "-m",
        "alignlab",
        "guard",
        "eval",
        "--guard",
        args.guard,
        "--max-per-set",
        str(args.max_per_set),
        "--data-dir",
        str(args.data_dir),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True)
    import json

    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    for image in ("roc.png", "cost_recall.png"):
        shutil.copy(out / image, RESULTS / f"guard_{image}")
    rows = {}
    for name in ("previous_generation", "exchange_classifier", "probe_cascade", "production"):
        row = results[name]
        attacks = row["attack_success"]
        rows[name] = {
            "relative_compute": row["relative_compute"],
            "recall": row["recall"],
            "attack_success_mean": sum(a["success"] for a in attacks.values()) / max(1, len(attacks)),
            "attack_success": attacks,
            "benign_traffic_flag_rate": row["benign_traffic_flag_rate"],
            "over_refusal": row["over_refusal"],
            "sets": row["sets"],
            "universality": results["universality"][name],
        }
    write(
        "guard_table",
        {
            "guard": args.guard,
            "guard_sha256_16": guard_stamp(args.guard),
            "max_per_set": args.max_per_set,
            "systems": rows,
            "escalation_rate": results["escalation_rate"],
            "spearman_probe_classifier": results["spearman_probe_classifier"],
            "probe_share_of_policy_compute": results["probe_share_of_policy_compute"],
            "flops_per_token": results["flops_per_token"],
            "measured_seconds_per_exchange": results["measured_seconds_per_exchange"],
            "thresholds": results["thresholds"],
        },
    )


if __name__ == "__main__":
    main()
