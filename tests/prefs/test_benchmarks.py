"""The prefs benchmark scripts run end to end at smoke size, on the embedded model and the shared data.

Each writes its JSON and plot to a temporary folder (never over ``benchmarks/results``), and
the resumable ones are checked to skip finished work when run again.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def bench_module(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/NAME.py`` as module ``bench_NAME`` (``prefs`` is also this test package's name)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    if f"bench_{name}" not in sys.modules:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"bench_{name}", module)
        spec.loader.exec_module(module)
    return sys.modules[f"bench_{name}"]


def _run(
    name: str, monkeypatch: pytest.MonkeyPatch, results: Path, *argv: str, plot: bool = True
) -> dict[str, Any]:
    module = bench_module(name, monkeypatch)
    common = importlib.import_module("common")
    monkeypatch.setattr(common, "RESULTS", results)
    monkeypatch.setattr(module, "RESULTS", results, raising=False)  # scripts that write only through common
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    module.main()
    text = (results / f"{name}.json").read_text()
    assert str(results.parent) not in text, "a local path leaked into the results"
    assert (results / f"{name}.png").is_file() or not plot
    record: dict[str, Any] = json.loads(text)
    return record


def _smoke(data: Path, work: Path, *seeds: int) -> tuple[str, ...]:
    return ("--size", "smoke", "--seeds", *map(str, seeds), "--data-dir", str(data), "--work", str(work))


def _rerun_without_training(
    name: str, trainer: str, monkeypatch: pytest.MonkeyPatch, results: Path, argv: tuple[str, ...]
) -> dict[str, Any]:
    """Run the benchmark again with its training function replaced by one that fails if called."""

    def no_training(*args: Any) -> dict[str, Any]:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(bench_module(name, monkeypatch), trainer, no_training)
    return _run(name, monkeypatch, results, *argv)


def test_pmp_sample_efficiency_smoke_runs_and_resumes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _smoke(shared_data, tmp_path / "work", 0)
    record = _run("prefs_pmp", monkeypatch, tmp_path / "results", *argv)
    assert {(r["condition"], r["pairs"]) for r in record["runs"]} == {
        (c, n) for c in ("none", "ranked", "binary") for n in (8, 16)
    }
    assert all(r["n"] == 24 and 0.0 <= r["accuracy"] <= 1.0 for r in record["runs"])
    assert "within noise" in record["honesty"]
    assert {(r["kind"], r["seed"]) for r in record["pmp"]} == {("ranked", 0), ("binary", 0)}

    again = _rerun_without_training("prefs_pmp", "fine_tune", monkeypatch, tmp_path / "results", argv)
    assert again["runs"] == record["runs"]


def test_objectives_benchmark_smoke_summarises_seeds_and_resumes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _smoke(shared_data, tmp_path / "work", 0, 1)
    record = _run("prefs", monkeypatch, tmp_path / "results", *argv)
    names = ["ranked", "binary", "imitation", "ranked PMP + ranked", "binary PMP + ranked"]
    assert [row["condition"] for row in record["summary"]] == names
    assert sorted((r["seed"], r["condition"]) for r in record["conditions"]) == sorted(
        (seed, name) for seed in (0, 1) for name in names
    )
    for row in record["summary"]:
        per_seed = row["hh_harmless"]["per_seed"]
        assert len(per_seed) == 2 and row["hh_harmless"]["mean"] == pytest.approx(sum(per_seed) / 2)
        low, high = row["hhh"]["one_run_wilson95"]
        assert low <= row["hhh"]["mean"] <= high

    again = _rerun_without_training("prefs", "run_condition", monkeypatch, tmp_path / "results", argv)
    assert again["summary"] == record["summary"]


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
    slots = record["token_slots_in_timed_steps"]
    # Packing computes each context once and little padding: between the real tokens and TRL's rows.
    assert slots["real_context_once"] <= slots["packed"] < slots["rows (as TRL)"]
    assert slots["real_context_once"] < slots["real_rows"] <= slots["rows (as TRL)"]


def test_hhh_scoring_smoke_reports_every_rule_with_and_without_the_prompt(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alignlab.prefs.likelihood import RULE_NAMES

    argv = ("--size", "smoke", "--data-dir", str(shared_data))
    record = _run("prefs_hhh_scoring", monkeypatch, tmp_path / "results", *argv, plot=False)
    cells = {(c["rule"], c["prompt"]): c for c in record["conditions"]}
    assert set(cells) == {(rule, prompt) for rule in RULE_NAMES for prompt in ("none", "hhh")}
    assert record["default_rule"] == "sum" and list(record["rules"]) == list(RULE_NAMES)
    longer = record["baselines"]["longer_answer_wins"]
    assert all(c["overall"]["longer_wins"] == longer for c in cells.values())
    # Log-probabilities are negative: whenever the sum prefers the longer response, so does the sum
    # per character, so the per-character rule prefers the longer one at least as often.
    for prompt in ("none", "hhh"):
        assert cells[("sum", prompt)]["prefers_longer"] <= cells[("mean-char", prompt)]["prefers_longer"] <= 1
    table = bench_module("figures", monkeypatch).prefs_hhh_scoring(record)
    assert sum(line.startswith("| `") for line in table) == len(RULE_NAMES)


def test_hhh_shared_smoke_times_both_paths_and_their_scores_agree(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ("--size", "smoke", "--data-dir", str(shared_data))
    record = _run("prefs_hhh_shared", monkeypatch, tmp_path / "results", *argv, plot=False)
    assert set(record["by_prompt"]) == {"none", "hhh"}
    for result in record["by_prompt"].values():
        seconds = result["seconds"]
        assert min(seconds.values()) > 0 and result["pairs_decided_differently"] == 0
        assert result["max_relative_score_gap"] <= record["relative_tolerance"]
        assert result["ratio_unshared_over_shared"] == pytest.approx(seconds["unshared"] / seconds["shared"])
    slots = record["token_slots_without_prompt"]
    assert slots["shared"] < slots["unshared"]  # each context once, not once per response
    assert "cpu" in record["machine"]
    assert record["command"].startswith("python benchmarks/prefs_hhh_shared.py")
