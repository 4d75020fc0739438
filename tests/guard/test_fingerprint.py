"""No stale parts: data folders and trained guards are keyed by recipe, constitution and data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from guard_data import data_folder, tiny_records

from alignlab.guard.constitution import load_constitution
from alignlab.guard.fingerprint import claim, data_fingerprint
from alignlab.guard.recipe import Recipe


def test_the_data_key_moves_with_recipe_constitution_and_data(tmp_path: Path) -> None:
    root = data_folder(tmp_path / "data")
    constitution = load_constitution()
    recipe = Recipe(max_per_source=2)
    base = data_fingerprint(recipe, constitution, root)
    assert data_fingerprint(recipe, constitution, root) == base, "the key is stable"
    assert data_fingerprint(replace(recipe, response_tokens=32), constitution, root) != base
    assert data_fingerprint(replace(recipe, probe_epochs=2), constitution, root) == base, (
        "training-only field"
    )
    edited = replace(constitution, categories=constitution.categories[1:])
    assert data_fingerprint(recipe, edited, root) != base
    prompts = root / "cyberseceval" / "prompts.jsonl"
    prompts.write_text(prompts.read_text().replace("hack 0", "hack zero"))
    assert data_fingerprint(recipe, constitution, root) != base


def test_a_changed_recipe_retrains_instead_of_reusing(tiny_backend: Any, tmp_path: Path) -> None:
    from alignlab.guard.train import train_guard

    recipe = Recipe(
        policy="tiny", classifier_layers=1, probe_epochs=1, probe_layer_stride=1, target_escalation=0.5
    )
    out, work = tmp_path / "guard", tmp_path / "work"
    first = train_guard(recipe, tiny_records(16), tiny_backend, work, out)
    again = train_guard(recipe, tiny_records(16), tiny_backend, work, out)
    changed = train_guard(replace(recipe, classifier_lr=1e-3), tiny_records(16), tiny_backend, work, out)
    assert "reused" not in first and "exchange" in again["reused"], "same key: reused"
    assert again["exchange_classifier_loss"] == first["exchange_classifier_loss"], (
        "its curves kept in the card"
    )
    assert "reused" not in changed, "a new recipe trains anew"
    assert changed["fingerprint"] != first["fingerprint"] == again["fingerprint"]
    assert json.loads((out / "guard.json").read_text())["fingerprint"] == changed["fingerprint"]
    more = train_guard(recipe, tiny_records(18), tiny_backend, work, out)
    assert "reused" not in more and more["fingerprint"] != first["fingerprint"], "new data"


def test_a_retrained_classifier_reuses_the_policy_activations(tiny_backend: Any, tmp_path: Path) -> None:
    from alignlab.guard.train import train_guard

    recipe = Recipe(
        policy="tiny", classifier_layers=1, probe_epochs=1, probe_layer_stride=1, target_escalation=0.5
    )
    out, work = tmp_path / "guard", tmp_path / "work"
    train_guard(recipe, tiny_records(16), tiny_backend, work, out)
    [features] = (work / "features").glob("*/features.npy")
    written = features.stat().st_mtime_ns
    changed = train_guard(replace(recipe, classifier_epochs=2), tiny_records(16), tiny_backend, work, out)
    assert "reused" not in changed, "the classifiers train anew"
    assert [features] == list((work / "features").glob("*/features.npy"))
    assert features.stat().st_mtime_ns == written, "the activations depend on neither: not extracted again"
    train_guard(replace(recipe, probe_layer_stride=2), tiny_records(16), tiny_backend, work, out)
    assert len(list((work / "features").glob("*/features.npy"))) == 2, "other layers: a new extraction"


def test_a_length_reference_recalibrates_without_retraining(tiny_backend: Any, tmp_path: Path) -> None:
    from alignlab.guard.probe import LinearProbe
    from alignlab.guard.train import train_guard

    recipe = Recipe(
        policy="tiny", classifier_layers=1, probe_epochs=1, probe_layer_stride=1, target_escalation=0.5
    )
    out, work = tmp_path / "guard", tmp_path / "work"
    first = train_guard(recipe, tiny_records(), tiny_backend, work, out)
    assert LinearProbe.load(out / "probe").reference is None
    adjusted = train_guard(
        replace(recipe, probe_length_reference="benign-median"), tiny_records(), tiny_backend, work, out
    )
    assert adjusted["fingerprint"] == first["fingerprint"] and "exchange" in adjusted["reused"]
    reference = LinearProbe.load(out / "probe").reference
    assert reference is not None and reference.positions[0] == 1
    assert adjusted["probe_length_reference"]["rows"] == 24, "every benign training exchange"
    assert set(adjusted["probe_length_reference"]["calibration_spearman"]) == {"rows", "raw", "adjusted"}
    spec = json.loads((out / "guard.json").read_text())
    assert spec["probe_length_reference"] == "benign-median"
    assert spec["probe_threshold"] != first["thresholds"]["probe_threshold"], "calibrated on adjusted scores"


def test_claim_removes_parts_of_another_key(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "guard.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    assert claim(tmp_path, "a") is True and not (tmp_path / "probe").exists()
    (tmp_path / "probe").mkdir()
    assert claim(tmp_path, "a") is False and (tmp_path / "probe").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_guard_fingerprint_follows_what_scores_and_ignores_its_cards(tmp_path: Path) -> None:
    from alignlab.guard.evaluate import fingerprint

    (tmp_path / "probe").mkdir()
    (tmp_path / "guard.json").write_text('{"probe_threshold": 1.0}')
    (tmp_path / "probe" / "probe.safetensors").write_bytes(b"weights")
    (tmp_path / "card.json").write_text('{"evaluation": null}')
    (tmp_path / "probe" / "curves.json").write_text("[]")
    base = fingerprint(tmp_path)
    (tmp_path / "card.json").write_text('{"evaluation": {"recall": 0.5}}')
    (tmp_path / "probe" / "curves.json").write_text("[0.4]")
    (tmp_path / "fingerprint").write_text("training key\n")
    assert fingerprint(tmp_path) == base, "a card, a curve or the training key does not change how it scores"
    (tmp_path / "guard.json").write_text('{"probe_threshold": 2.0}')
    assert fingerprint(tmp_path) != base, "a threshold does"
    (tmp_path / "guard.json").write_text('{"probe_threshold": 1.0}')
    (tmp_path / "probe" / "probe.safetensors").write_bytes(b"other weights")
    assert fingerprint(tmp_path) != base, "so do weights"
