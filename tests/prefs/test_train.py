"""Training: each objective learns, a run resumes exactly, LoRA, PMP, and two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import ConfigError
from alignlab.prefs.data import Ranking
from alignlab.prefs.train import TrainConfig, step_indices, train


def _config(tiny_model_dir: Path, out: Path, **kwargs: Any) -> TrainConfig:
    base = {"model": str(tiny_model_dir), "steps": 12, "batch_size": 4, "lr": 3e-3, "max_tokens": 64}
    return TrainConfig(out=str(out), **{**base, **kwargs})


def _weights(pm: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in pm.modules().state_dict().items()}


@pytest.mark.parametrize("objective", ["ranked", "binary", "imitation"])
def test_each_objective_changes_the_weights_and_lowers_its_loss(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking], make_pm: Any, objective: str
) -> None:
    initial = _weights(make_pm())
    result = train(
        _config(
            tiny_model_dir,
            tmp_path,
            objective=objective,
            layout="shared" if objective == "binary" else "packed",
        ),
        pairs,
    )
    assert len(result.losses) == 12
    assert sum(result.losses[-3:]) / 3 < 0.8 * sum(result.losses[:3]) / 3
    trained = _weights(result.model)
    assert any(not (trained[k] == initial[k]).all() for k in initial if k.startswith("lm."))
    scores = result.model.score(pairs[:10])
    assert sum(good > bad for good, bad in scores) >= 9
    summary = json.loads((tmp_path / "train.json").read_text())
    assert (
        summary["losses"] == result.losses
        and summary["provenance"]["component"] == f"prefs.train:{objective}"
    )


def test_an_interrupted_run_resumes_to_the_same_weights(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]
) -> None:
    whole = train(_config(tiny_model_dir, tmp_path / "whole", steps=6, checkpoint_every=2), pairs)

    def crash(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    config = _config(tiny_model_dir, tmp_path / "cut", steps=6, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, pairs, on_step=crash)
    assert (tmp_path / "cut" / "latest").read_text() == "checkpoint-4"
    resumed = train(config, pairs)
    assert resumed.resumed_from == 4 and len(resumed.losses) == 6
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-6)
    a, b = _weights(whole.model), _weights(resumed.model)
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)


def test_a_finished_run_is_loaded_not_retrained(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]
) -> None:
    config = _config(tiny_model_dir, tmp_path, steps=3, checkpoint_every=2)
    first = train(config, pairs)
    steps: list[int] = []
    again = train(config, pairs, on_step=lambda step, loss: steps.append(step))
    assert steps == [] and again.losses == first.losses and again.resumed_from == 3
    a, b = _weights(first.model), _weights(again.model)
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)
    longer = train(
        _config(tiny_model_dir, tmp_path, steps=4, checkpoint_every=2),
        pairs,
        on_step=lambda s, _: steps.append(s),
    )
    assert steps and len(longer.losses) == 4  # another config trains (resuming its checkpoint)


def test_lora_trains_adapters_and_the_head(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]
) -> None:
    pytest.importorskip("peft")
    from alignlab.prefs.model import PreferenceModel

    result = train(_config(tiny_model_dir, tmp_path, lora=True, lora_rank=4, lr=1e-2), pairs)
    assert result.losses[-1] < result.losses[0]
    saved = PreferenceModel.load(tmp_path / "model")  # adapters merged into plain weights
    assert not any("lora" in k for k in saved.lm.state_dict())
    for a, b in zip(saved.score(pairs[:4]), result.model.score(pairs[:4]), strict=True):
        assert a == pytest.approx(b, abs=1e-5)


def test_evaluation_only_data_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from alignlab.prefs.train import training_data

    with pytest.raises(ConfigError, match="evaluation only"):
        training_data(_config(tiny_model_dir, tmp_path, data="hhh"))


def test_step_indices_cover_every_item_once_per_epoch() -> None:
    seen = [i for step in range(5) for i in step_indices(10, step, 4, seed=1)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert step_indices(10, 3, 4, seed=1) == step_indices(10, 3, 4, seed=1) != step_indices(10, 3, 4, seed=2)


def test_pmp_then_fine_tuning_starts_from_the_pretrained_model(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]
) -> None:
    from alignlab.prefs.pmp import PMPConfig

    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"context": r.context, "chosen": r.responses[0], "rejected": r.responses[1]}) + "\n"
            for r in pairs
        )
    )
    config = PMPConfig(
        model=str(tiny_model_dir),
        pmp="binary",
        pmp_data=f"jsonl:{data}",
        pmp_steps=3,
        data=f"jsonl:{data}",
        steps=2,
        batch_size=4,
        max_tokens=64,
        out=str(tmp_path / "run"),
    )
    pretrain, finetune = config.stages()
    assert pretrain.transform == "binary-pmp" and pretrain.split == "all" and finetune.split == "train"
    assert finetune.model == str(tmp_path / "run" / "pmp" / "model")
    from alignlab.prefs.pmp import run_pmp

    first, second = run_pmp(config)
    assert len(first.losses) == 3 and len(second.losses) == 2
    assert (tmp_path / "run" / "finetune" / "model" / "preference_model.json").is_file()
    with pytest.raises(ConfigError):
        PMPConfig(pmp="unary").stages()


def test_an_unknown_layout_is_an_error_before_any_work(
    tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]
) -> None:
    with pytest.raises(ConfigError, match=r"layout 'diagonal'.*packed, shared, rows"):
        train(_config(tiny_model_dir, tmp_path, layout="diagonal"), pairs)
    assert not any(tmp_path.iterdir()), "nothing was written"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_training_with_two_processes(tiny_model_dir: Path, tmp_path: Path, pairs: list[Ranking]) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"context": r.context, "chosen": r.responses[0], "rejected": r.responses[1]}) + "\n"
            for r in pairs
        )
    )
    launch = "-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1"
    launch += f" --main_process_port {_free_port()} --mixed_precision no --dynamo_backend no"
    launch += " -m alignlab prefs train"
    arguments = "--split all --steps 4 --batch-size 4 --lr 3e-3 --max-tokens 64"
    command = [
        sys.executable,
        *launch.split(),
        *("--model", str(tiny_model_dir), "--data", f"jsonl:{data}", "--out", str(tmp_path / "run")),
        *arguments.split(),
    ]
    # accelerate runs several CPU processes with --multi_gpu and ACCELERATE_USE_CPU (--cpu alone runs one).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["processes"] == 2 and len(summary["losses"]) == 4
    assert summary["losses"][-1] < summary["losses"][0]
