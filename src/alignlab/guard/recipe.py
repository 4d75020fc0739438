"""A guard recipe: every setting that turns a constitution into a trained guard, as one dataclass.

Recipes are YAML files (``guard/data/recipes/*.yaml``) loaded into :class:`Recipe`; the
same fields are the options of ``alignlab guard train``, where ``--recipe`` picks the file and
each option given overrides its value (:func:`build_recipe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alignlab.core.config import load_config, option, with_overrides
from alignlab.errors import ConfigError
from alignlab.guard.window import Window

TRAIN_FAMILIES = (
    "base64_encoding",
    "leetspeak",
    "role_play",
    "many_shot",
    "prompt_injection",
    "system_prompt_override",
    "reconstruction",
)
HELD_OUT_FAMILIES = (
    "rot13_cipher",
    "odd_casing",
    "character_noise",
    "fiction_wrapper",
    "multi_turn_split",
    "output_obfuscation",
)


@dataclass(frozen=True)
class Recipe:
    """How to build a guard."""

    name: str = option("default", "recipe name, recorded in the guard's card")
    constitution: str | None = option(None, "constitution YAML (None: the shipped default)")
    policy: str = option("smollm2", "policy model whose activations the probe reads (an hf spec)")
    generator: str = option("smollm2", "model that writes synthetic requests (any backend spec)")
    synthetic_per_category: int = option(10, "synthetic requests asked of the generator per category")
    max_per_source: int = option(15, "most seed requests taken from each dataset source")
    max_examples: int = option(0, "use only the first N examples in the stable shuffled order (0: all)")
    augment_copies: int = option(1, "augmented copies per training seed (each a random training family)")
    train_families: tuple[str, ...] = option(TRAIN_FAMILIES, "augmentation families used for training")
    held_out_families: tuple[str, ...] = option(
        HELD_OUT_FAMILIES, "augmentation families kept for evaluation"
    )
    held_out_per_seed: int = option(3, "held-out families applied to each harmful test seed (rotating)")
    max_request_chars: int = option(600, "longer seed requests are cut to this many characters")
    test_fraction: float = option(0.2, "share of seeds (by hash) held out as the test split")
    response_tokens: int = option(16, "policy response length generated per training exchange")
    answer_precision: str = option(
        "fp32",
        "precision the policy answers training exchanges in: fp32 (as served) or bf16 (the same weights, "
        "faster on a CPU with bf16 matrix units; greedy answers may differ)",
    )
    prompt_window: int = option(
        512, "prompt tokens every stage scores (the last ones), in training, evaluation and serving alike"
    )
    score_from: str = option(
        "client", "where scores start: client (skip the chat template's fixed preamble) or template"
    )
    probe_layer_stride: int = option(2, "probe reads every Nth layer of the policy (1: all layers)")
    probe_window: int = option(16, "sliding window of the probe's per-token logits in training")
    probe_epochs: int = option(30, "probe training epochs")
    classifier_layers: int = option(
        4, "policy blocks kept as the exchange classifier's backbone (0: the whole policy, with LoRA)"
    )
    classifier_backbone: str = option(
        "policy", "the exchange classifier's backbone: policy, or a model spec sharing its tokenizer"
    )
    classifier_lora_rank: int = option(8, "LoRA rank of the exchange classifier's adapter")
    classifier_epochs: int = option(
        1, "most exchange classifier training epochs (early stopping may end sooner)"
    )
    classifier_patience: int = option(2, "epochs without a better validation loss before training stops")
    validation_fraction: float = option(
        0.1, "share of the fitted requests (by hash) held out as the classifiers' validation split"
    )
    baseline_epochs: int = option(1, "training epochs of the input-only and output-only baseline classifiers")
    classifier_lr: float = option(5e-5, "exchange classifier learning rate")
    classifier_precision: str = option(
        "no",
        "mixed precision of classifier training: no, or bf16 (autocast; weights and scoring stay fp32)",
    )
    cummax_weight: float = option(0.5, "interpolation of per-token prediction toward its cumulative max")
    calibration_fraction: float = option(
        0.15, "share of training requests (by hash) kept out of fitting to set the thresholds"
    )
    target_escalation: float = option(0.055, "share of benign training traffic stage 1 escalates")
    target_flag_rate: float = option(0.005, "share of benign training traffic the cascade flags")
    probe_length_reference: str = option(
        "none",
        "benign-median: the probe's score is its excess over the median benign peak at the same "
        "scored length (fitted on benign training traffic); none: the raw peak",
    )
    probe_weight: float = option(0.55, "weight of the probe in the stage-2 ensemble (classifier: 1 - this)")
    decontam_jaccard: float = option(
        0.6, "drop training items with this character 5-gram Jaccard to any evaluation item (or more)"
    )
    decontam_cosine: float = option(
        0.85, "drop training items this close (embedding cosine) to an evaluation item"
    )
    decontam_embedder: str = option(
        "minilm", "sentence embedder for the paraphrase check: minilm, a model folder, or none (skip it)"
    )
    hh_redteam: int = option(
        0, "most HH-RLHF red-team first turns taken as harmful seeds (those that screen as disallowed)"
    )
    hh_redteam_screen: float = option(
        0.5, "a red-team turn is a harmful seed at this embedding cosine to a disallowed example (or more)"
    )
    stackexchange_questions: int = option(0, "Stack Exchange questions added as long benign requests")
    real_traffic: str = option(
        "none",
        "real user traffic for benign negatives and calibration: sharegpt (the wheel), a path, or none",
    )
    real_traffic_conversations: int = option(
        0, "training-part conversations of real traffic used (first by hash)"
    )
    real_traffic_turns: int = option(5, "turns of each real conversation kept (up to its last user turn)")
    real_traffic_heldout: float = option(
        0.2, "share of real conversations (by hash of id) held out for evaluation"
    )
    real_traffic_screen: float = option(
        0.6, "drop real conversations this close (embedding cosine) to a disallowed constitution example"
    )
    seed: int = option(0, "random seed for sampling, augmentation and training")

    def __post_init__(self) -> None:
        self.window  # noqa: B018 (validates the window fields: ConfigError on a bad one)
        if self.classifier_precision not in ("no", "bf16"):
            raise ConfigError(f"classifier_precision must be no or bf16, not {self.classifier_precision!r}")
        if self.answer_precision not in ("fp32", "bf16"):
            raise ConfigError(f"answer_precision must be fp32 or bf16, not {self.answer_precision!r}")
        if self.probe_length_reference not in ("none", "benign-median"):
            raise ConfigError(
                f"probe_length_reference must be none or benign-median, not {self.probe_length_reference!r}"
            )

    @property
    def window(self) -> Window:
        """The prompt window and scoring start every path of the guard shares."""
        return Window(self.prompt_window, self.score_from)  # type: ignore[arg-type]


def recipe_path(name: str) -> Path:
    """Where the shipped recipe ``name`` lives (the file may not exist)."""
    return Path(str(resources.files("alignlab.guard") / "data" / "recipes" / f"{name}.yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A shipped recipe by name (``default``, ``smoke``) or a recipe YAML file.

    Raises:
        ConfigError: no such recipe, or an unknown or ill-typed key (named).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = recipe_path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"no recipe {name_or_path!r} (shipped: default, smoke; or give a YAML path)")
    return load_config(Recipe, path)


def build_recipe(name_or_path: str = "default", **overrides: Any) -> Recipe:
    """A recipe (as :func:`load_recipe`) with some fields replaced, as ``guard train`` builds it.

    Raises:
        ConfigError: no such recipe, an unknown field (named, with the closest), or an
            ill-typed value.
    """
    return with_overrides(load_recipe(name_or_path), overrides)
