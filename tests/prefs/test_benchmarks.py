"""The prefs benchmark scripts run end to end at smoke size, on the embedded model and the shared data.

Each writes its JSON and plot to a temporary folder (never over ``benchmarks/results``), and
the resumable ones are checked to skip finished work when run again.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(name: str, monkeypatch: pytest.MonkeyPatch, results: Path, *argv: str) -> dict[str, Any]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("common")
    module = importlib.import_module(name)
    monkeypatch.setattr(common, "RESULTS", results)
    monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    module.main()
    text = (results / f"{name}.json").read_text()
    assert str(results.parent) not in text, "a local path leaked into the results"
    assert (results / f"{name}.png").is_file()
    record: dict[str, Any] = json.loads(text)
    return record


def test_pmp_sample_efficiency_smoke_runs_and_resumes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = (
        "--size",
        "smoke",
        "--seeds",
        "0",
        "--data-dir",
        str(shared_data),
        "--work",
        str(tmp_path / "work"),
    )
    record = _run("prefs_pmp", monkeypatch, tmp_path / "results", *argv)
    assert {(r["condition"], r["pairs"]) for r in record["runs"]} == {
        (c, n) for c in ("none", "ranked", "binary") for n in (8, 16)
    }
    assert all(r["n"] == 24 and 0.0 <= r["accuracy"] <= 1.0 for r in record["runs"])
    assert "within noise" in record["honesty"]
    assert {(r["kind"], r["seed"]) for r in record["pmp"]} == {("ranked", 0), ("binary", 0)}

    module = sys.modules["prefs_pmp"]

    def no_training(*args: Any) -> dict[str, Any]:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(module, "fine_tune", no_training)
    again = _run("prefs_pmp", monkeypatch, tmp_path / "results", *argv)
    assert again["runs"] == record["runs"]


def test_distill_smoke_moves_the_student_towards_the_teacher(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ("--size", "smoke", "--data-dir", str(shared_data), "--work", str(tmp_path / "work"))
    record = _run("prefs_distill", monkeypatch, tmp_path / "results", *argv)
    assert record["kl_to_teacher"]["after"] < record["kl_to_teacher"]["before"]
    assert [s["stage"] for s in record["stages"]] == ["plain", "prompted", "distill", "distilled"]
    assert set(record["hhh_all"]) == {"plain", "prompted", "distilled"}


def test_throughput_smoke_times_both_trainers(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl", reason="needs the bench extra")
    argv = ("--size", "smoke", "--data-dir", str(shared_data), "--sides", "alignlab", "trl")
    record = _run("prefs_throughput", monkeypatch, tmp_path / "results", *argv)
    rates = record["pairs_per_second"]
    assert set(rates) == {"alignlab", "trl"} and min(rates.values()) > 0
    assert record["ratio"] == pytest.approx(rates["alignlab"] / rates["trl"])
    tokens = record["tokens_computed_in_timed_steps"]
    assert tokens["alignlab"] < tokens["trl"]  # the shared context is computed once per pair
