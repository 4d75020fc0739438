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


def roles(records: Sequence[dict[str, Any]]) -> list[str]:
    """``fit`` (trains), ``calib`` (sets thresholds: training sources, never fitted) or ``test``."""
    out = []
    for r in records:
        if r["split"] == "test":
            out.append("test")
        else:
            out.append("calib" if unit_hash(f"calib:{r['request']}") < 0.15 else "fit")
    return out


def fit_classifier(
    policy_model: Any, rows: Sequence[list[int]], labels: Sequence[float], recipe: Recipe, *, name: str
) -> tuple[ExchangeClassifier, list[float]]:
    """Train one classifier (LoRA + head) through accelerate; returns it and per-epoch mean losses."""
    from accelerate import Accelerator

    from alignlab.core.progress import progress_bar

    epochs = recipe.classifier_epochs if name == "exchange" else recipe.baseline_epochs
    model = ExchangeClassifier.from_policy(policy_model, recipe.classifier_layers, seed=recipe.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=recipe.classifier_lr, weight_decay=0.0)
    head_params = {id(p) for p in model.head.parameters()}
    for group in optimiser.param_groups:  # the fresh head learns faster than the adapter
        group["params"] = [p for p in group["params"] if id(p) not in head_params]
    optimiser.add_param_group({"params": list(model.head.parameters()), "lr": recipe.classifier_lr * 20})
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model, optimiser = accelerator.prepare(model, optimiser)
    order = np.arange(len(rows))
    batch, history = 8, []
    with progress_bar() as bar:
        task = bar.add_task(f"training the {name} classifier", total=epochs * len(rows))
        for epoch in range(epochs):
            np.random.default_rng(recipe.seed + epoch).shuffle(order)
            model.train()
            losses = []
            for start in range(0, len(order), batch):
                chunk = order[start : start + batch]
                ids, mask = pad([rows[i] for i in chunk])
                y = torch.tensor([labels[i] for i in chunk], dtype=torch.float32)
                loss = streaming_loss(model(ids, mask), mask.float(), y, recipe.cummax_weight)
                optimiser.zero_grad()
                accelerator.backward(loss)
                optimiser.step()
                losses.append(float(loss.detach()))
                bar.update(
                    task, advance=len(chunk), description=f"training the {name} classifier ({losses[-1]:.3f})"
                )
            history.append(float(np.mean(losses)))
    return accelerator.unwrap_model(model).eval(), history


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
    from alignlab.guard.probe import max_scores, train_probe

    started = time.perf_counter()
    fingerprint = guard_fingerprint(recipe, records)
    claim(out, fingerprint)  # parts trained for another recipe or other data are removed, not reused
    work = work / fingerprint[:16]
    role = roles(records)
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
    for view in VIEWS:
        folder = out / f"{view}_classifier"
        if (folder / "classifier.json").is_file():
            classifiers[view] = ExchangeClassifier.load(folder, policy.model)
            continue
        model, history = fit_classifier(
            policy.model, [tokens[view][i].scored for i in fit], labels, recipe, name=view
        )
        model.save(folder)
        classifiers[view] = model
        card[f"{view}_classifier_loss"] = history
    teacher = torch.sigmoid(
        torch.tensor(exchange_scores(classifiers["exchange"], [tokens["exchange"][i].scored for i in fit]))
    )
    soft = [0.5 * y + 0.5 * float(t) for y, t in zip(labels, teacher, strict=True)]
    layers = probe_layers(int(policy.model.config.num_hidden_layers), recipe.probe_layer_stride)
    store = extract(policy, tokens["exchange"], layers, work / "features")
    probe, probe_history = train_probe(
        store, fit, soft, layers, window=recipe.probe_window, epochs=recipe.probe_epochs, seed=recipe.seed
    )
    probe.save(out / "probe")
    card["probe_loss"] = probe_history
    calib = [i for i, r in enumerate(role) if r == "calib" and records[i]["label"] == 0]
    probe_z = max_scores(probe, store, calib)
    calib_scores = {v: exchange_scores(classifiers[v], [tokens[v][i].scored for i in calib]) for v in VIEWS}
    thresholds = calibrate(
        probe_z, calib_scores["exchange"], recipe, input=calib_scores["input"], output=calib_scores["output"]
    )
    spec = {
        "policy": recipe.policy,
        "window": recipe.window.to_dict(),
        "fingerprint": fingerprint,
        **thresholds,
    }
    (out / "guard.json").write_text(json.dumps(spec, indent=2))
    card.update(thresholds=thresholds, train_seconds=time.perf_counter() - started)
    (out / "card.json").write_text(json.dumps(card, indent=2))
    return card
