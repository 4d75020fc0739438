"""Context distillation: teach a model without the HHH prompt to behave as if it had it.

The teacher is the model *with* the prompt before each text; the student is the same
model without it. First the teacher's next-token distributions over a text corpus are
cached as their top-k log-probabilities; then the student is trained to match them by
minimising, at every position, ``KL(teacher || student)`` over the teacher's top k tokens
and one bucket holding the rest of the probability. Askell et al. (2021) found the distilled model
behaves like the prompted one at no prompt cost.

A run keeps the teacher cache and, every ``checkpoint_every`` steps, the student and its
optimiser in ``output``; rerunning the same settings on the same texts picks up there and ends
with the same weights as a run that never stopped (the data order is a function of seed and
step). Other settings or texts start afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.core.config import dump_config, option
from alignlab.errors import ConfigError
from alignlab.prefs.backbone import backbone_path, keep_layers
from alignlab.prefs.model import import_torch


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a context-distillation run."""

    model: str = option("smollm2", "model to distil: 'smollm2' or a transformers model folder")
    prompt: str = option(
        "", "prompt file (JSON like the shipped one, or .txt); default: the shipped HHH prompt"
    )
    data: str = option("hh-harmless", "corpus: the contexts and preferred responses of this training source")
    data_dir: str = option("", "the shared data folder (default: $ALIGNLAB_DATA, else ../shared/data)")
    limit: int = option(256, "texts in the corpus (the first N of the train split)")
    held_out: int = option(32, "of those, texts kept aside to measure KL to the teacher")
    top_k: int = option(32, "teacher log-probabilities cached per position")
    max_tokens: int = option(256, "tokens per text (cut at the end)")
    steps: int = option(100, "optimiser steps")
    batch_size: int = option(4, "texts per step")
    lr: float = option(1e-5, "learning rate")
    layers: int = option(0, "keep only the first N transformer layers (0 = all)")
    seed: int = option(0, "seed of the data order")
    out: str = option(
        "runs/prefs-distill", "folder for the distilled model and distill.json", old_names=("output",)
    )
    checkpoint_every: int = option(50, "save the student and optimiser every N steps (0 = only at the end)")
    resume: bool = option(True, "reuse the cached teacher and resume from the checkpoint in --out")


@dataclass(frozen=True)
class TeacherTargets:
    """One text's tokens and the teacher's top-k next-token log-probabilities at each position.

    ``top_ids[t]`` and ``top_logprobs[t]`` describe the token after ``ids[t]``.
    """

    ids: list[int]
    top_ids: Any
    top_logprobs: Any


def teacher_targets(
    lm: Any, tokenizer: Any, prompt: str, texts: Sequence[str], top_k: int, max_tokens: int
) -> list[TeacherTargets]:
    """Cache the prompted teacher's top-k distributions over ``texts`` (prompt computed once)."""
    torch = import_torch()
    from alignlab.prefs.prompt import PrefixedLM

    teacher = PrefixedLM(lm, tokenizer, prompt)
    targets = []
    with torch.no_grad():
        for text in texts:
            ids = teacher.encode(text)[:max_tokens]
            (logits,) = teacher.logits([ids])
            # Entry t of logits predicts ids[t]; position t of the student predicts ids[t + 1].
            logp = torch.log_softmax(logits[1:], dim=-1)
            values, indices = torch.topk(logp, top_k, dim=-1)
            targets.append(TeacherTargets(ids, indices.to(torch.int32), values))
    return targets


def distill_loss(student_logits: Any, top_ids: Any, top_logprobs: Any) -> Any:
    """Mean over positions of ``KL(teacher || student)`` on the teacher's top k tokens plus one
    bucket for all the rest, so it is zero exactly when the two agree on those k + 1 masses.

    Args:
        student_logits: ``(T, vocab)`` the student's logits at each position.
        top_ids, top_logprobs: ``(T, k)`` the teacher's top-k tokens and log-probabilities.
    """
    torch = import_torch()
    teacher = top_logprobs.float()
    student = torch.log_softmax(student_logits.float(), dim=-1).gather(1, top_ids.long())
    teacher = torch.cat([teacher, _rest(teacher)], dim=-1)
    student = torch.cat([student, _rest(student)], dim=-1)
    return (teacher.exp() * (teacher - student)).sum(dim=-1).mean()


def _rest(logprobs: Any) -> Any:
    """``log(1 - sum(exp(logprobs)))`` per row, kept finite."""
    torch = import_torch()
    covered = logprobs.exp().sum(dim=-1, keepdim=True).clamp(max=1.0 - 1e-6)
    return torch.log1p(-covered)


def _batch_loss(lm: Any, targets: Sequence[TeacherTargets]) -> Any:
    """The mean distillation loss of a batch, right-padded so real positions see no padding."""
    torch = import_torch()
    width = max(len(t.ids) for t in targets)
    ids = torch.zeros((len(targets), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(targets):
        ids[i, : len(t.ids)] = torch.tensor(t.ids)
        mask[i, : len(t.ids)] = 1
    logits = lm(input_ids=ids, attention_mask=mask).logits
    losses = [
        distill_loss(logits[i, : len(t.ids) - 1], t.top_ids, t.top_logprobs) for i, t in enumerate(targets)
    ]
    return torch.stack(losses).mean()


def kl_to_teacher(lm: Any, targets: Sequence[TeacherTargets]) -> float:
    """The student's mean top-k KL to the teacher over ``targets`` (no gradients)."""
    torch = import_torch()
    total, count = 0.0, 0
    with torch.no_grad():
        for target in targets:
            logits = lm(input_ids=torch.tensor([target.ids])).logits[0, :-1]
            total += float(distill_loss(logits, target.top_ids, target.top_logprobs)) * len(target.ids[1:])
            count += len(target.ids[1:])
    return total / max(1, count)


@dataclass
class DistillResult:
    """KL to the teacher on held-out texts before and after, the losses, and the models' folder."""

    kl_before: float
    kl_after: float
    losses: list[float]
    output: Path
    student: Any


def corpus(config: DistillConfig) -> list[str]:
    """The distillation texts: context + preferred response of the first ``limit`` training rankings.

    Raises:
        ConfigError: the source is evaluation-only, or yields too few texts.
    """
    from alignlab.prefs.data import EVALUATION_ONLY, load_source, split

    if config.data.partition(":")[0] in EVALUATION_ONLY:
        raise ConfigError(f"{config.data!r} is evaluation only; it must never be trained on")
    rankings = split(load_source(config.data, config.data_dir or None).rankings, "train")[: config.limit]
    texts = [r.context + r.responses[r.best()[0]] for r in rankings]
    if len(texts) <= config.held_out:
        raise ConfigError(f"{len(texts)} texts is not more than held_out={config.held_out}")
    return texts


def load_lm(model: str, layers: int = 0) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a backbone spec, optionally cut to ``layers``."""
    torch = import_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = backbone_path(model)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if layers:
        keep_layers(lm, layers)
    return lm, AutoTokenizer.from_pretrained(path)


def distill(
    config: DistillConfig,
    texts: Sequence[str] | None = None,
    *,
    model: tuple[Any, Any] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> DistillResult:
    """Cache the teacher, train the student, and save it to ``config.out/model``.

    Args:
        config: the settings.
        texts: the corpus; by default :func:`corpus`.
        model: ``(lm, tokenizer)`` to distil in place; by default loaded from ``config.model``.
        on_step: called after every step with ``(step, loss)``.
    """
    torch = import_torch()
    from alignlab.prefs.prompt import load_prompt
    from alignlab.prefs.train import step_indices

    texts = list(texts) if texts is not None else corpus(config)
    lm, tokenizer = model if model is not None else load_lm(config.model, config.layers)
    prompt = load_prompt(config.prompt or None)
    output = Path(config.out)
    output.mkdir(parents=True, exist_ok=True)
    run = _run_key(config, prompt, texts)
    lm.eval()
    cached = _load_state(output / TEACHER_FILE, run) if config.resume else None
    if cached is None:
        targets = teacher_targets(lm, tokenizer, prompt, texts, config.top_k, config.max_tokens)
        kl_before = kl_to_teacher(lm, targets[: config.held_out])
        columns = {name: [getattr(t, name) for t in targets] for name in ("ids", "top_ids", "top_logprobs")}
        _save_state(output / TEACHER_FILE, {"run": run, "kl_before": kl_before, **columns})
    else:
        kl_before = cached["kl_before"]
        targets = [
            TeacherTargets(*row)
            for row in zip(cached["ids"], cached["top_ids"], cached["top_logprobs"], strict=True)
        ]
    held, train_targets = targets[: config.held_out], targets[config.held_out :]
    optimizer = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=config.lr, fused=True)
    losses: list[float] = []
    checkpoint = _load_state(output / CHECKPOINT_FILE, run) if config.resume else None
    if checkpoint is not None:
        lm.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        losses = list(checkpoint["losses"])
    lm.train()
    for step in range(len(losses), config.steps):
        chosen = [
            train_targets[i] for i in step_indices(len(train_targets), step, config.batch_size, config.seed)
        ]
        loss = _batch_loss(lm, chosen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            state = {"model": lm.state_dict(), "optimizer": optimizer.state_dict(), "losses": losses}
            _save_state(output / CHECKPOINT_FILE, {"run": run, **state})
        if on_step is not None:
            on_step(step + 1, losses[-1])
    lm.eval()
    kl_after = kl_to_teacher(lm, held)
    lm.save_pretrained(output / "model")
    tokenizer.save_pretrained(output / "model")
    summary = {"kl_before": kl_before, "kl_after": kl_after, "losses": losses, "config": dump_config(config)}
    (output / "distill.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output / CHECKPOINT_FILE).unlink(missing_ok=True)
    return DistillResult(kl_before, kl_after, losses, output, lm)


TEACHER_FILE = "teacher.pt"
CHECKPOINT_FILE = "checkpoint.pt"


def _run_key(config: DistillConfig, prompt: str, texts: Sequence[str]) -> str:
    """What a cached teacher or a checkpoint must match: every setting but where and how often to save."""
    from dataclasses import replace

    from alignlab.core.provenance import hash_records

    settings = dump_config(replace(config, out="", checkpoint_every=0, resume=True))
    return hash_records([settings, prompt, *texts])


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write beside ``path`` and then rename, so a crash mid-write leaves the previous file whole."""
    torch = import_torch()
    temp = path.with_suffix(".tmp")
    torch.save(state, temp)
    temp.replace(path)


def _load_state(path: Path, run: str) -> dict[str, Any] | None:
    """The state saved at ``path`` if it belongs to this run, else None."""
    torch = import_torch()
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, weights_only=True)  # tensors and plain values only
    return state if state.get("run") == run else None
