"""Context distillation: the top-k KL, the teacher cache, and a run that moves the student to the teacher."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alignlab.prefs.distill import DistillConfig, distill, distill_loss, teacher_targets

from .conftest import WORDS


def test_distill_loss_is_zero_for_the_same_distribution_and_positive_otherwise() -> None:
    import torch

    torch.manual_seed(0)
    logits = torch.randn(5, 50)
    top = torch.topk(torch.log_softmax(logits, -1), 8, dim=-1)
    assert float(distill_loss(logits, top.indices, top.values)) == pytest.approx(0.0, abs=1e-5)
    assert float(distill_loss(torch.randn(5, 50), top.indices, top.values)) > 0.05


def test_without_a_prompt_the_teacher_is_the_student(tiny_backend: Any) -> None:
    from alignlab.prefs.distill import kl_to_teacher

    targets = teacher_targets(tiny_backend.model, tiny_backend.tokenizer, "", ["hello world the dog"], 8, 32)
    assert len(targets[0].top_ids) == len(targets[0].ids) - 1
    assert kl_to_teacher(tiny_backend.model, targets) == pytest.approx(0.0, abs=1e-5)


def test_distillation_brings_the_student_closer_to_the_prompted_teacher(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    rng = random.Random(0)
    texts = ["\n\nHuman: " + " ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(24)]
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("paris is the capital. paris is the capital. paris is the capital.")
    model = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    before = {k: v.clone() for k, v in model[0].state_dict().items()}
    config = DistillConfig(
        prompt=str(prompt),
        held_out=4,
        top_k=16,
        steps=15,
        batch_size=4,
        lr=3e-3,
        out=str(tmp_path / "out"),
    )
    result = distill(config, texts, model=model)
    # A random tiny model barely reads its context, so the gap is small, but it is real and it shrinks.
    assert result.kl_before > 1e-5
    assert result.kl_after < 0.5 * result.kl_before
    assert any(not (before[k] == v).all() for k, v in model[0].state_dict().items())
    assert (tmp_path / "out" / "model" / "config.json").is_file() and (
        tmp_path / "out" / "distill.json"
    ).is_file()


def test_an_interrupted_distillation_resumes_to_the_same_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [f"\n\nHuman: {' '.join(WORDS[i : i + 6])}" for i in range(12)]
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("paris is the capital.")

    def fresh() -> tuple[Any, Any]:
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(
            tiny_model_dir
        )

    def settings(output: str) -> DistillConfig:
        return DistillConfig(
            prompt=str(prompt),
            held_out=2,
            top_k=8,
            steps=6,
            batch_size=2,
            lr=3e-3,
            out=output,
            checkpoint_every=2,
        )

    whole = distill(settings(str(tmp_path / "whole")), texts, model=fresh())

    class Stop(Exception):
        pass

    def crash(step: int, loss: float) -> None:
        if step == 5:
            raise Stop

    cut = str(tmp_path / "cut")
    with pytest.raises(Stop):
        distill(settings(cut), texts, model=fresh(), on_step=crash)
    assert (tmp_path / "cut" / "checkpoint.pt").is_file() and (tmp_path / "cut" / "teacher.pt").is_file()
    seen: list[int] = []
    resumed = distill(settings(cut), texts, model=fresh(), on_step=lambda step, loss: seen.append(step))
    assert seen == [5, 6], "steps 1-4 came from the checkpoint"
    assert resumed.losses == pytest.approx(whole.losses) and resumed.kl_before == whole.kl_before
    for (name, a), b in zip(
        whole.student.state_dict().items(), resumed.student.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not (tmp_path / "cut" / "checkpoint.pt").exists(), "a finished run drops its checkpoint"
    # Other settings start afresh instead of resuming someone else's student.
    other = str(tmp_path / "other")
    with pytest.raises(Stop):
        distill(settings(other), texts, model=fresh(), on_step=crash)
    seen.clear()
    distill(
        replace(settings(other), lr=1e-3), texts, model=fresh(), on_step=lambda step, loss: seen.append(step)
    )
    assert seen == [1, 2, 3, 4, 5, 6]
