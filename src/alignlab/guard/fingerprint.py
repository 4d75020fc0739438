"""Fingerprints that key every stored part of a guard, so nothing stale is ever reused.

The data folder is keyed by the recipe fields that shape the data, the constitution, the
dataset seeds read from the shared data and the evaluation items it is decontaminated
against; a trained guard (classifiers, probe, thresholds and cached activations) by every
recipe field (but those that shape only calibration) and the exchanges it was trained on. Changing any
of them gives a new fingerprint: a new data folder, and a guard folder whose stale parts are
removed and rebuilt. The guard's ``guard.json`` and card record the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alignlab.guard.constitution import Constitution
from alignlab.guard.recipe import Recipe

DATA_FIELDS = (
    "constitution",
    "policy",
    "generator",
    "synthetic_per_category",
    "max_per_source",
    "augment_copies",
    "train_families",
    "held_out_families",
    "held_out_per_seed",
    "max_request_chars",
    "test_fraction",
    "response_tokens",
    "answer_precision",
    "seed",
    "decontam_jaccard",
    "decontam_cosine",
    "decontam_embedder",
    "hh_redteam",
    "hh_redteam_screen",
    "stackexchange_questions",
    "real_traffic",
    "real_traffic_conversations",
    "real_traffic_turns",
    "real_traffic_heldout",
    "real_traffic_screen",
)
"""Recipe fields the exchange dataset depends on (the rest only shape training)."""

STALE_PARTS = (
    "exchange_classifier",
    "input_classifier",
    "output_classifier",
    "probe",
    "guard.json",
    "card.json",
)


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(recipe: Recipe, constitution: Constitution, root: Path | None) -> str:
    """The exchange dataset's key: its recipe fields, the constitution and the dataset seeds."""
    from alignlab.guard.evalsets import load_eval_sets, shipping_bar
    from alignlab.guard.seeds import dataset_seeds

    seeds = (
        [asdict(s) for s in dataset_seeds(root, recipe.max_per_source, recipe.stackexchange_questions)]
        if root is not None
        else []
    )
    evaluation = [asdict(i) for i in [*(load_eval_sets(root) if root is not None else []), *shipping_bar()]]
    fields = {name: getattr(recipe, name) for name in DATA_FIELDS}
    if recipe.real_traffic != "none" and recipe.real_traffic_conversations > 0:
        from alignlab.guard.traffic import traffic_path

        stat = traffic_path(recipe.real_traffic).stat()
        fields["real_traffic_file"] = [stat.st_size, stat.st_mtime_ns]
    return digest(
        {"recipe": fields, "constitution": asdict(constitution), "seeds": seeds, "evaluation": evaluation}
    )


CALIBRATION_FIELDS = ("probe_length_reference",)
"""Recipe fields that shape only the probe's calibration, which every training run redoes.

They stay out of the trained parts' key, so changing one keeps the classifiers and the cached
activations; ``guard.json`` and the card record their values.
"""


def guard_fingerprint(recipe: Recipe, records: Sequence[dict[str, Any]]) -> str:
    """A trained guard's key: every recipe field but :data:`CALIBRATION_FIELDS`, and the exchanges."""
    rows = [[r["id"], r["messages"], r["response"], r["label"], r["split"]] for r in records]
    fields = {k: v for k, v in asdict(recipe).items() if k not in CALIBRATION_FIELDS}
    return digest({"recipe": fields, "records": digest(rows)})


def claim(folder: Path, fingerprint: str) -> bool:
    """Make ``folder`` belong to ``fingerprint``: parts built for another one are removed.

    Returns:
        Whether anything stale was removed.
    """
    stamp = folder / "fingerprint"
    folder.mkdir(parents=True, exist_ok=True)
    if stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return False
    removed = False
    for part in STALE_PARTS:
        path = folder / part
        if path.is_dir():
            shutil.rmtree(path)
            removed = True
        elif path.exists():
            path.unlink()
            removed = True
    stamp.write_text(fingerprint + "\n")
    return removed
