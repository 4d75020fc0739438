"""Validation curves of trained guards, side by side: how a recipe choice (such as the exchange
classifier's depth) is made by validation on training data, never by evaluation sets.

    alignlab guard train --recipe default --out PATH_A            # and once per variant
    alignlab guard train --recipe default --classifier-layers 8 --out PATH_B
    python benchmarks/guard_validation.py --guard LABEL_A PATH_A --guard LABEL_B PATH_B

Each guard's card holds its classifiers' loss per epoch on the validation split (a hash of the
request, so one request's augmentations stay on one side) and the probe's training loss. Writes
``results/guard_validation.json`` and ``results/guard_validation.png``; the plot puts every
variant's exchange-classifier validation loss on one axis.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import RESULTS, add_guards, guard_stamp, write

COMPARED = (
    "classifier_layers",
    "classifier_backbone",
    "classifier_lr",
    "classifier_lora_rank",
    "cummax_weight",
)


def variant(label: str, folder: Path) -> dict[str, Any]:
    card = json.loads((folder / "card.json").read_text())
    curves = card["exchange_classifier_loss"]
    return {
        "label": label,
        "guard_sha256_16": guard_stamp(str(folder)),
        "fingerprint_16": str(card["fingerprint"])[:16],
        "recipe": {name: card["recipe"][name] for name in COMPARED},
        "counts": card["counts"],
        "exchange_classifier": curves,
        "best_validation_loss": min(curves["validation"]),
        "input_classifier": card.get("input_classifier_loss"),
        "output_classifier": card.get("output_classifier_loss"),
        "probe_final_loss": card["probe_loss"][-1],
        "thresholds": card["thresholds"],
        "train_seconds": card.get("train_seconds"),
    }


def plot(variants: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for v in variants:
        curves = v["exchange_classifier"]
        epochs = range(1, len(curves["validation"]) + 1)
        (line,) = ax.plot(epochs, curves["validation"], marker="o", label=f"{v['label']} validation")
        ax.plot(epochs, curves["train"], linestyle="--", color=line.get_color(), label=f"{v['label']} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("streaming loss")
    ax.set_title("Exchange classifier: loss per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_guards(parser, "a label and a trained guard's folder (repeat per variant)", required=True)
    args = parser.parse_args()
    variants = [variant(label, Path(folder).expanduser()) for label, folder in args.guard]
    best = min(variants, key=lambda v: v["best_validation_loss"])
    write("guard_validation", {"variants": variants, "lowest_validation_loss": best["label"]})
    plot(variants, RESULTS / "guard_validation.png")


if __name__ == "__main__":
    main()
