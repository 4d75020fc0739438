"""The ``alignlab prefs`` commands end to end on a tiny model and tiny files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from alignlab.prefs.cli import app

from .conftest import synthetic_pairs


def test_data_train_and_eval_commands(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [
        {"context": r.context, "chosen": r.responses[0], "rejected": r.responses[1]}
        for r in synthetic_pairs()
    ]
    rows.append({"context": "broken", "chosen": "same", "rejected": "same"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    shown = runner.invoke(app, ["data", f"jsonl:{data}"])
    assert shown.exit_code == 0, shown.output
    assert "40 rankings, skipped 1" in shown.output and f"{data}:41" in shown.output
    out = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            *("train", "--model", str(tiny_model_dir), "--data", f"jsonl:{data}", "--split", "all"),
            *(
                "--steps",
                "6",
                "--batch-size",
                "4",
                "--lr",
                "3e-3",
                "--max-tokens",
                "64",
                "--out",
                str(out),
            ),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (out / "model" / "preference_model.json").is_file()
    hhh = tmp_path / "hhh_alignment" / "harmless"
    hhh.mkdir(parents=True)
    examples = [{"input": "capital?", "target_scores": {"paris is the capital.": 1, "hello": 0}}]
    (hhh / "task.json").write_text(json.dumps({"examples": examples}))
    report = tmp_path / "report.json"
    evaluated = runner.invoke(
        app, ["eval", "--model", str(out / "model"), "--data-dir", str(tmp_path), "--out", str(report)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "longer wins" in evaluated.output
    (result,) = json.loads(report.read_text())
    assert result["suite"] == "hhh" and result["rows"][-1]["n"] == 1
    # The old spelling still writes the same report, with one warning line on stderr.
    again = tmp_path / "again.json"
    old_flag = runner.invoke(
        app, ["eval", "--model", str(out / "model"), "--data-dir", str(tmp_path), "--output", str(again)]
    )
    assert old_flag.exit_code == 0, old_flag.output
    assert json.loads(again.read_text()) == json.loads(report.read_text())
    warning = "warning: --output is deprecated and goes in the next release; use --out"
    assert [line for line in old_flag.stderr.splitlines() if "deprecated" in line] == [warning]


def test_pmp_and_distill_commands(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [
        {"context": r.context, "chosen": r.responses[0], "rejected": r.responses[1]}
        for r in synthetic_pairs()
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    common = ["--model", str(tiny_model_dir), "--batch-size", "4", "--max-tokens", "64"]
    pmp = runner.invoke(
        app,
        [
            *("pmp", *common, "--pmp", "binary", "--pmp-data", f"jsonl:{data}", "--pmp-steps", "2"),
            *("--data", f"jsonl:{data}", "--steps", "2", "--out", str(tmp_path / "pmp")),
        ],
    )
    assert pmp.exit_code == 0, pmp.output
    assert "fine-tuning loss" in pmp.output and (tmp_path / "pmp" / "finetune" / "model").is_dir()
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Human: hello\n\nAssistant: paris is the capital.\n\n-----")
    distilled = runner.invoke(
        app,
        [
            *("distill", "--model", str(tiny_model_dir), "--data", f"jsonl:{data}", "--limit", "12"),
            *("--prompt", str(prompt)),
            *("--held-out", "4", "--steps", "2", "--top-k", "8", "--out", str(tmp_path / "d"), "--no-hhh"),
        ],
    )
    assert distilled.exit_code == 0, distilled.output
    assert "KL to the prompted teacher" in distilled.output
    assert json.loads((tmp_path / "d" / "distill.json").read_text())["kl_before"] > 0
