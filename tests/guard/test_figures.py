"""Guard figures in the docs say when they were measured on a guard other than the shipped one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def figures(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_figures", BENCHMARKS / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_figures", module)
    spec.loader.exec_module(module)
    return module


def test_a_guard_figure_of_another_guard_is_labelled_and_one_of_the_shipped_guard_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alignlab.guard.evaluate import fingerprint
    from alignlab.guard.load import packaged_guard

    module = figures(monkeypatch)
    shipped = fingerprint(packaged_guard())[:16]
    assert module.earlier_guard({"guard_sha256_16": shipped}) == ""
    assert module.earlier({"guard_sha256_16": shipped}) == ""
    other = module.earlier_guard({"guard_sha256_16": "0" * 16})
    assert "another guard" in other and shipped in other and "0" * 16 in other
    assert module.earlier({}) == " (another guard than the shipped one)", "no stamp is not the shipped guard"
    assert module.earlier_guard({"guard": "none", "guard_sha256_16": None}) == "", "unguarded: no guard"


def test_the_code_speed_section_renders_the_record_the_benchmark_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = figures(monkeypatch)
    side = {"seconds": 100.0, "tokens": 4096, "tokens_per_s": 40.96}
    record = {  # the keys benchmarks/code_speed.py writes, plus the command common.write adds
        "command": "python benchmarks/code_speed.py",
        "size": "16 HumanEval prompts in one batch",
        "model": "qwen2.5-coder-0.5b",
        "mode": "evalplus",
        "alignlab_sampler": side,
        "transformers_generate": {**side, "seconds": 200.0, "tokens_per_s": 20.48},
        "ratio": 2.0,
        "identical_replies": "16 of 16",
        "note": "prefill included on both sides",
    }
    text = "\n".join(module.code_speed(record))
    assert "| 41.0 |" in text and "| 20.5 |" in text
    assert "Ratio 2.00" in text and "16 of 16" in text


def test_the_shipping_bar_table_marks_the_shipped_guard_and_counts_each_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alignlab.guard.evaluate import fingerprint
    from alignlab.guard.load import packaged_guard

    module = figures(monkeypatch)
    shipped = fingerprint(packaged_guard())[:16]

    def guard(label: str, stamp: str, refused: int) -> dict[str, Any]:
        harmful = [{"label": 1, "refused": i < refused} for i in range(5)]
        benign = [{"label": 0, "refused": False} for _ in range(5)]
        return {"label": label, "guard_sha256_16": stamp, "harmful_refused": refused, "benign_answered": 5,
                "passes": refused >= 4, "requests": harmful + benign}  # fmt: skip

    record = {"command": "python benchmarks/guard_bar.py", "max_tokens": 24, "needed": 4,
              "guards": [guard("v1", shipped, 4), guard("v2", "0" * 16, 1)]}  # fmt: skip
    rows = [line for line in module.guard_bar(record) if line.startswith("| v")]
    assert rows == [
        f"| v1 (shipped now) | `{shipped}` | 4 of 5 | 5 of 5 | yes |",
        f"| v2 | `{'0' * 16}` | 1 of 5 | 5 of 5 | no |",
    ]
