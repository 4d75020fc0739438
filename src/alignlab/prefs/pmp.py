"""Preference-model pre-training (PMP), then fine-tuning: the whole pipeline as one call.

Stage 1 trains on a large, cheap comparison source (Stack Exchange answers ranked by
votes) with the ranked loss, either on the rankings as they are (``ranked`` PMP) or on
their binary transform (``binary`` PMP: each pair A > B becomes ``GOOD: A > BAD: A`` and
``BAD: B > GOOD: B``), which Askell et al. (2021) found to transfer best. Stage 2 starts
from the stage-1 model, head included, and fine-tunes on the target data with its own
learning rate and objective.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from alignlab.core.config import option
from alignlab.errors import ConfigError
from alignlab.prefs.train import TrainConfig, TrainResult, train

PMP_KINDS = ("ranked", "binary")


@dataclass(frozen=True)
class PMPConfig:
    """PMP on one source, then fine-tuning on another."""

    model: str = option("smollm2", "backbone: 'smollm2' or a transformers model folder")
    data_dir: str = option("", "the shared data folder (default: $ALIGNLAB_DATA, else ../shared/data)")
    pmp: str = option("binary", "PMP kind: 'binary' (GOOD:/BAD: labelled pairs) or 'ranked'")
    pmp_data: str = option("stackexchange", "PMP data: stackexchange, or KIND:PATH")
    pmp_limit: int = option(0, "use at most this many PMP rankings (0 = all)")
    pmp_steps: int = option(100, "PMP optimiser steps")
    pmp_lr: float = option(1e-5, "PMP learning rate")
    data: str = option("hh-harmless", "fine-tuning data (its train split)")
    limit: int = option(0, "fine-tune on at most this many rankings (0 = all)")
    objective: str = option("ranked", "fine-tuning objective: ranked, binary or imitation")
    steps: int = option(100, "fine-tuning optimiser steps")
    lr: float = option(1e-5, "fine-tuning learning rate")
    batch_size: int = option(8, "rankings per step, both stages")
    max_tokens: int = option(512, "most tokens per context + response")
    layers: int = option(0, "keep only the first N transformer layers (0 = all)")
    lora: bool = option(False, "train LoRA adapters and the head; needs peft")
    seed: int = option(0, "seed")
    out: str = option(
        "runs/prefs-pmp", "folder; stages go to OUT/pmp and OUT/finetune", old_names=("output",)
    )

    def stages(self) -> tuple[TrainConfig, TrainConfig]:
        """The two :class:`TrainConfig` s this pipeline runs.

        Raises:
            ConfigError: an unknown PMP kind.
        """
        if self.pmp not in PMP_KINDS:
            raise ConfigError(f"unknown PMP kind {self.pmp!r}; use one of {', '.join(PMP_KINDS)}")
        shared = {
            "data_dir": self.data_dir,
            "batch_size": self.batch_size,
            "max_tokens": self.max_tokens,
            "lora": self.lora,
            "seed": self.seed,
        }
        pretrain = TrainConfig(
            model=self.model,
            data=self.pmp_data,
            split="all",
            limit=self.pmp_limit,
            transform="binary-pmp" if self.pmp == "binary" else "none",
            objective="ranked",
            steps=self.pmp_steps,
            lr=self.pmp_lr,
            layers=self.layers,
            out=str(Path(self.out) / "pmp"),
            **shared,  # type: ignore[arg-type]
        )
        finetune = dataclasses.replace(
            pretrain,
            model=str(Path(self.out) / "pmp" / "model"),
            data=self.data,
            split="train",
            limit=self.limit,
            transform="none",
            objective=self.objective,
            steps=self.steps,
            lr=self.lr,
            layers=0,
            out=str(Path(self.out) / "finetune"),
        )
        return pretrain, finetune


def run_pmp(config: PMPConfig) -> tuple[TrainResult, TrainResult]:
    """Pre-train, then fine-tune from the pre-trained model; each stage resumes if interrupted.

    Raises:
        ConfigError: a bad PMP kind or objective, or evaluation-only data.
    """
    pretrain, finetune = config.stages()
    first = train(pretrain)
    return first, train(finetune)
