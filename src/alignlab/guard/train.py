"""``alignlab guard train``: constitution → data → classifiers → probe → calibrated cascade.

Every step writes into the work folder and is reused on a rerun, so an interrupted training
resumes where it stopped. The finished guard (adapters, heads, probe, thresholds and a
card) is written to the guard folder; it is small enough to ship in the package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alignlab.core.splits import unit_hash
from alignlab.guard.classifier import ExchangeClassifier, streaming_loss
from alignlab.guard.features import Tokens, View, tokens_of
from alignlab.guard.policy import GuardPolicy
from alignlab.guard.recipe import Recipe
from alignlab.models.padding import pad

VIEWS: tuple[View, ...] = ("exchange", "input", "output")


def roles(records: Sequence[dict[str, Any]], calibration: float = 0.15) -> list[str]:
    """``fit`` (trains), ``calib`` (sets thresholds: training sources, never fitted) or ``test``.

    ``calibration`` is the share of training requests (by hash, so one request's augmentations
    stay together) kept for calibration.
    """
    out = []
    for r in records:
        if r["split"] == "test":
            out.append("test")
        else:
            out.append("calib" if unit_hash(f"calib:{r['request']}") < calibration else "fit")
    return out


def fit_classifier(
    policy_model: Any,
    rows: Sequence[list[int]],
    labels: Sequence[float],
    recipe: Recipe,
    *,
    name: str,
    keys: Sequence[str] | None = None,
    backbone: tuple[str, Any] | None = None,
) -> tuple[ExchangeClassifier, dict[str, Any]]:
    """Train one classifier (LoRA + head) through accelerate, with early stopping on a validation split.

    ``recipe.validation_fraction`` of the rows (by a hash of ``keys``, or of the row index) is
    held out of fitting; after every epoch its loss is measured, the best epoch's weights are
    kept, and training stops after ``recipe.classifier_patience`` epochs without improvement.

    Returns:
        The classifier and its curves: ``train`` and ``validation`` loss per epoch, ``best_epoch``
        and whether it ``stopped_early``.
    """
    from accelerate import Accelerator

    from alignlab.core.progress import progress_bar

    epochs = recipe.classifier_epochs if name == "exchange" else recipe.baseline_epochs
    model = ExchangeClassifier.from_policy(
        policy_model,
        recipe.classifier_layers,
        rank=recipe.classifier_lora_rank,
        seed=recipe.seed,
        backbone=backbone,
    )
    names = list(keys) if keys is not None else [str(i) for i in range(len(rows))]
    held = [unit_hash(f"validation:{k}") < recipe.validation_fraction for k in names]
    train_idx = [i for i, h in enumerate(held) if not h] or list(range(len(rows)))
    val_idx = [i for i, h in enumerate(held) if h]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=recipe.classifier_lr, weight_decay=0.0)
    head_params = {id(p) for p in model.head.parameters()}
    for group in optimiser.param_groups:  # the fresh head learns faster than the adapter
        group["params"] = [p for p in group["params"] if id(p) not in head_params]
    optimiser.add_param_group({"params": list(model.head.parameters()), "lr": recipe.classifier_lr * 20})
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # torch's autocast, not accelerate's mixed_precision: that one is fixed once per process.
    autocast_on = recipe.classifier_precision == "bf16"
    model, optimiser = accelerator.prepare(model, optimiser)
    batch = 8
    curves: dict[str, Any] = {"train": [], "validation": [], "best_epoch": None, "stopped_early": False}
    best, best_state, waited = float("inf"), None, 0
    with progress_bar() as bar:
        task = bar.add_task(f"training the {name} classifier", total=epochs * len(train_idx))
        for epoch in range(epochs):
            model.train()
            losses = []
            for chunk in length_grouped(
                train_idx, [len(rows[i]) for i in train_idx], batch, recipe.seed + epoch
            ):
                ids, mask = pad([rows[i] for i in chunk])
                y = torch.tensor([labels[i] for i in chunk], dtype=torch.float32)
                with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=autocast_on):
                    logits = model(ids, mask)
                loss = streaming_loss(logits.float(), mask.float(), y, recipe.cummax_weight)
                optimiser.zero_grad()
                accelerator.backward(loss)
                optimiser.step()
                losses.append(float(loss.detach()))
                bar.update(
                    task, advance=len(chunk), description=f"training the {name} classifier ({losses[-1]:.3f})"
                )
            curves["train"].append(float(np.mean(losses)))
            if not val_idx:
                continue
            val = validation_loss(model, [rows[i] for i in val_idx], [labels[i] for i in val_idx], recipe)
            curves["validation"].append(val)
            if val < best - 1e-4:
                best, waited, curves["best_epoch"] = val, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items() if _trained(k)}
            else:
                waited += 1
                if waited >= recipe.classifier_patience:
                    curves["stopped_early"] = epoch < epochs - 1
                    break
    final = accelerator.unwrap_model(model)
    if best_state is not None:  # the best validation epoch, not the last
        final.load_state_dict(best_state, strict=False)
    return final.eval(), curves


def length_grouped(indices: Sequence[int], lengths: Sequence[int], batch: int, seed: int) -> list[list[int]]:
    """One epoch's batches of ``indices``, shuffled, with rows of similar length batched together.

    transformers' :class:`~transformers.trainer_pt_utils.LengthGroupedSampler` (``group_by_length``
    in its Trainer): random mega-batches, each sorted by length, so a batch pads to its own
    longest row rather than to a long conversation drawn at random.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    order = LengthGroupedSampler(batch, lengths=list(lengths), generator=torch.Generator().manual_seed(seed))
    picked = [int(indices[i]) for i in order]
    return [picked[start : start + batch] for start in range(0, len(picked), batch)]


def _trained(key: str) -> bool:
    return "lora_" in key or key.startswith("head.")


@torch.inference_mode()
def validation_loss(
    model: ExchangeClassifier, rows: Sequence[list[int]], labels: Sequence[float], recipe: Recipe
) -> float:
    """The streaming loss on held-out rows (mean over batches of 16)."""
    model.eval()
    losses = []
    for start in range(0, len(rows), 16):
        ids, mask = pad(list(rows[start : start + 16]))
        y = torch.tensor(list(labels[start : start + 16]), dtype=torch.float32)
        losses.append(float(streaming_loss(model(ids, mask), mask.float(), y, recipe.cummax_weight)))
    return float(np.mean(losses))


def length_dependence(probe: Any, store: Any, rows: Sequence[int]) -> dict[str, float]:
    """Spearman correlation of the probe's peak with the scored length, raw and length-adjusted."""
    from scipy.stats import spearmanr

    lengths = [len(store.rows(i)) for i in rows]
    raw = [max(probe.stream_scores(store.rows(i), raw=True)) for i in rows]
    adjusted = [max(probe.stream_scores(store.rows(i))) for i in rows]
    return {
        "rows": float(len(rows)),
        "raw": float(spearmanr(lengths, raw).statistic),
        "adjusted": float(spearmanr(lengths, adjusted).statistic),
    }


def exchange_scores(model: ExchangeClassifier, rows: Sequence[list[int]]) -> list[float]:
    """Each row's highest per-token logit: the streamed score at the end of the exchange."""
    return [max(s) for s in model.token_scores(list(rows))]


def view_tokens(
    policy: GuardPolicy, records: Sequence[dict[str, Any]], recipe: Recipe
) -> dict[View, list[Tokens]]:
    return {
        view: [
            tokens_of(policy, r["messages"], r["response"], view=view, window=recipe.window) for r in records
        ]
        for view in VIEWS
    }


def train_guard(
    recipe: Recipe, records: list[dict[str, Any]], policy: GuardPolicy, work: Path, out: Path
) -> dict[str, Any]:
    """Train every part of the guard from labelled exchanges; write it to ``out``; return its card.

    Parts already in ``out`` are reused only when they were trained for the same recipe and
    exchanges (the fingerprint in ``out/fingerprint``); cached activations live in a work
    folder keyed the same way.
    """
    from alignlab.guard.cascade import calibrate
    from alignlab.guard.features import extract, probe_layers
    from alignlab.guard.fingerprint import claim, guard_fingerprint
    from alignlab.guard.probe import fit_length_reference, max_scores, train_probe

    started = time.perf_counter()
    fingerprint = guard_fingerprint(recipe, records)
    claim(out, fingerprint)  # parts trained for another recipe or other data are removed, not reused
    features = work / "features"  # keyed by the activations' own inputs: shared by every training variant
    work = work / fingerprint[:16]
    role = roles(records, recipe.calibration_fraction)
    fit = [i for i, r in enumerate(role) if r == "fit"]
    labels = [float(records[i]["label"]) for i in fit]
    tokens = view_tokens(policy, records, recipe)
    card: dict[str, Any] = {
        "fingerprint": fingerprint,
        "window": recipe.window.to_dict(),
        "recipe": asdict(recipe),
        "counts": {r: role.count(r) for r in ("fit", "calib", "test")},
    }
    classifiers: dict[str, ExchangeClassifier] = {}
    backbone = None
    if recipe.classifier_backbone != "policy":
        from alignlab.guard.classifier import load_backbone

        backbone = (recipe.classifier_backbone, load_backbone(recipe.classifier_backbone, policy))
    for view in VIEWS:
        folder = out / f"{view}_classifier"
        if (folder / "classifier.json").is_file():  # trained by an earlier run for the same key
            classifiers[view] = ExchangeClassifier.load(folder, policy.model)
            card.setdefault("reused", []).append(view)
            if (folder / "curves.json").is_file():  # its validation curves stay in the card
                card[f"{view}_classifier_loss"] = json.loads((folder / "curves.json").read_text())
            continue
        model, history = fit_classifier(
            policy.model,
            [tokens[view][i].scored for i in fit],
            labels,
            recipe,
            name=view,
            keys=[str(records[i]["request"]) for i in fit],  # one request's augmentations stay together
            backbone=backbone,
        )
        model.save(folder)
        (folder / "curves.json").write_text(json.dumps(history, indent=2) + "\n")
        classifiers[view] = model
        card[f"{view}_classifier_loss"] = history
    teacher = torch.sigmoid(
        torch.tensor(exchange_scores(classifiers["exchange"], [tokens["exchange"][i].scored for i in fit]))
    )
    soft = [0.5 * y + 0.5 * float(t) for y, t in zip(labels, teacher, strict=True)]
    layers = probe_layers(int(policy.model.config.num_hidden_layers), recipe.probe_layer_stride)
    store = extract(policy, tokens["exchange"], layers, features, policy_key=recipe.policy)
    probe, probe_history = train_probe(
        store, fit, soft, layers, window=recipe.probe_window, epochs=recipe.probe_epochs, seed=recipe.seed
    )
    card["probe_loss"] = probe_history
    calib = [i for i, r in enumerate(role) if r == "calib" and records[i]["label"] == 0]
    if recipe.probe_length_reference == "benign-median":
        benign = [i for i, r in enumerate(role) if r != "test" and records[i]["label"] == 0]
        probe.reference = fit_length_reference([probe.stream_scores(store.rows(i), raw=True) for i in benign])
        card["probe_length_reference"] = {
            "rows": len(benign),
            **probe.reference.to_dict(),
            "calibration_spearman": length_dependence(probe, store, calib),
        }
    probe.save(out / "probe")
    probe_z = max_scores(probe, store, calib)
    calib_scores = {v: exchange_scores(classifiers[v], [tokens[v][i].scored for i in calib]) for v in VIEWS}
    thresholds = calibrate(
        probe_z, calib_scores["exchange"], recipe, input=calib_scores["input"], output=calib_scores["output"]
    )
    spec = {
        "policy": recipe.policy,
        "window": recipe.window.to_dict(),
        "fingerprint": fingerprint,
        "probe_length_reference": recipe.probe_length_reference,
        **thresholds,
    }
    (out / "guard.json").write_text(json.dumps(spec, indent=2))
    card.update(thresholds=thresholds, train_seconds=time.perf_counter() - started)
    (out / "card.json").write_text(json.dumps(card, indent=2))
    plot_curves(card, work / "validation.png")
    return card


def plot_curves(card: dict[str, Any], path: Path) -> None:
    """Training and validation loss per epoch of each classifier trained in this run (where any was)."""
    curves = {
        v: card[f"{v}_classifier_loss"] for v in VIEWS if isinstance(card.get(f"{v}_classifier_loss"), dict)
    }
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
    for ax, (view, c) in zip(axes[0], curves.items(), strict=True):
        ax.plot(range(1, len(c["train"]) + 1), c["train"], marker="o", label="train")
        if c["validation"]:
            ax.plot(range(1, len(c["validation"]) + 1), c["validation"], marker="o", label="validation")
        ax.set(title=f"{view} classifier", xlabel="epoch", ylabel="streaming loss")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
