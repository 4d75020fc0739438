"""The backbone of a preference model: where it comes from, cutting it short, LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignlab.errors import ConfigError, DependencyError, ModelNotFoundError

if TYPE_CHECKING:
    from alignlab.prefs.model import PreferenceModel


def keep_layers(lm: Any, layers: int) -> None:
    """Cut a transformers causal LM down to its first ``layers`` transformer layers, in place.

    Raises:
        ConfigError: the model has fewer layers, or no ``model.layers`` list.
    """
    decoder = lm.get_decoder()
    if not hasattr(decoder, "layers") or layers > len(decoder.layers):
        raise ConfigError(
            f"cannot keep {layers} layers of a model with {len(getattr(decoder, 'layers', []))}"
        )
    decoder.layers = decoder.layers[:layers]
    config = lm.config.get_text_config()
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]


def backbone_path(spec: str) -> Path:
    """The folder a backbone spec names: ``smollm2`` (prepared offline) or a local folder.

    Raises:
        ModelNotFoundError: the folder does not exist.
    """
    if spec == "smollm2":
        from alignlab.models import embedded

        return embedded.prepare(embedded.SMOLLM2)
    path = Path(spec.removeprefix("hf:"))
    if not path.is_dir():
        raise ModelNotFoundError(f"no model folder at {path}; give 'smollm2' or a transformers model folder")
    return path


def add_lora(pm: PreferenceModel, rank: int = 8, alpha: int = 16, dropout: float = 0.0) -> None:
    """Wrap the backbone in LoRA adapters on its attention and MLP projections (the head stays fully trained).

    Raises:
        DependencyError: peft is not installed.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise DependencyError("peft", "prefs") from exc
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    pm.lm = get_peft_model(pm.lm, config)
