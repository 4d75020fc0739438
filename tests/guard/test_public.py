"""The public-set comparison: items built from the real XSTest files, and metrics that can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignlab.core.datadir import data_root
from alignlab.guard.public import binary, rate, summarise, xstest_completions, xstest_prompts


def shared_or_skip() -> Path:
    root = data_root()
    if not (root / "xstest" / "model_completions").is_dir():
        pytest.skip(f"XSTest not found under {root.resolve()}; set $ALIGNLAB_DATA to run this test")
    return root


def test_xstest_items_follow_the_stated_rules() -> None:
    root = shared_or_skip()
    prompts = xstest_prompts(root)
    assert len(prompts) == 450 and sum(p["label"] for p in prompts) == 200
    assert all(p["response"] == "" for p in prompts)  # prompt level: the reply is not yet written
    responses = xstest_completions(root)
    assert len(responses) == 2250
    for r in responses:  # harmful = unsafe prompt and full compliance, and nothing else
        assert r["label"] == int(r["prompt_label"] == "unsafe" and r["final_label"].startswith("1_"))
        assert r["strict_label"] >= r["label"]
    assert 0 < sum(r["label"] for r in responses) < sum(r["strict_label"] for r in responses)


def test_binary_metrics_count_what_they_claim() -> None:
    m = binary([1, 1, 1, 0, 0, 0, 0], [True, True, False, True, False, False, False])
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["harmless_flag_rate"] == pytest.approx(1 / 4)
    low, high = m["recall_interval"]
    assert low < 2 / 3 < high
    assert binary([1, 0], [False, False])["f1"] == 0.0  # a guard that flags nothing scores 0, not NaN
    assert rate([False] * 9 + [True])["rate"] == pytest.approx(0.1)


def test_summary_reports_each_system_on_each_task() -> None:
    t = {"probe_threshold": 0.0, "classifier_threshold": 0.0, "ensemble_threshold": 0.0,
         "input_threshold": 0.0, "output_threshold": 0.0, "probe_weight": 0.5}  # fmt: skip

    def rec(name: str, label: int, z: float, **extra: object) -> dict[str, object]:
        return {
            "set": name,
            "label": label,
            "probe_z": z,
            "classifier_z": z,
            "input_z": z,
            "output_z": z,
            **extra,
        }

    records = [rec("xstest_prompt", 1, 1.0), rec("xstest_prompt", 0, -1.0), rec("xstest_prompt", 0, 1.0),
               rec("xstest_response", 1, 1.0, strict_label=1, model="gpt4"),
               rec("xstest_response", 0, -1.0, strict_label=1, model="gpt4"),
               rec("arena_hard", 0, 1.0), rec("harmful_test", 1, -1.0)]  # fmt: skip
    s = summarise(records, t)
    prod = s["systems"]["production"]
    assert prod["xstest_prompt"]["recall"] == 1.0 and prod["xstest_prompt"]["harmless_flag_rate"] == 0.5
    assert prod["xstest_response"]["f1"] == 1.0 and prod["xstest_response_strict"]["recall"] == 0.5
    assert prod["benign_flag_rate"]["arena_hard"]["rate"] == 1.0
    ood = prod["out_of_distribution"]
    assert ood["in_distribution_recall"]["rate"] == 0.0 and ood["unseen_source_recall"]["rate"] == 1.0
    assert s["auroc"]["xstest_prompt"]["probe"] == pytest.approx(0.75)
    assert s["escalation"]["arena_hard"]["rate"] == 1.0


def test_length_dependence_reports_a_score_that_grows_with_length() -> None:
    from alignlab.guard.public import length_dependence

    def rec(name: str, label: int, tokens: int, probe: float, classifier: float) -> dict[str, object]:
        return {
            "set": name,
            "label": label,
            "exchange_tokens": tokens,
            "probe_z": probe,
            "classifier_z": classifier,
        }

    benign = [rec("arena_hard", 0, n, 0.01 * n, -0.01 * n) for n in (10, 50, 200, 800)]
    harmful = [rec("harmful_test", 1, n, 1.0, float(i % 2)) for i, n in enumerate((12, 30, 40))]
    out = length_dependence({"arena_hard": benign, "harmful_test": harmful, "mt_bench": benign[:1]})
    assert out["benign_traffic"]["n"] == 5 and out["benign_traffic"]["median_tokens"] == 50
    assert out["benign_traffic"]["probe"] > 0.8 and out["benign_traffic"]["exchange_classifier"] < -0.8
    assert out["harmful_prompts"]["probe"] is None, "a constant score has no rank correlation"
    assert length_dependence({"arena_hard": benign[:2]}) == {}, "too few items to say"
