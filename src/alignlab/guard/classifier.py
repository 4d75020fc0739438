"""The streaming exchange classifier: a causal transformer with a value head scoring every token.

The backbone is the policy's own first ``layers`` transformer blocks (frozen, read from the
policy's weights) or, by spec, the first blocks of a separate model that shares the policy's
tokenizer (:func:`load_backbone`), adapted with LoRA through peft; a linear value head predicts, at every
token, whether the exchange so far is harmful. Training interpolates each token's
prediction toward the running maximum of the predictions before it, so the classifier is
rewarded for raising its score once and keeping it, which is what streaming needs: at
serving time generation stops the moment the running score crosses the threshold. Only the
adapter and head are saved (well under a megabyte); the backbone comes from the policy.
The same class, fed only the input or only the output, gives the previous generation's
input and output classifiers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alignlab.models.kvcache import cache_kwarg, returned_cache
from alignlab.models.padding import pad

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ExchangeClassifier(nn.Module):
    """Per-token harmfulness logits for token sequences.

    Args:
        backbone: a (LoRA-wrapped) base transformer returning ``last_hidden_state``.
        hidden_size: its width.
        layers: how many policy blocks it keeps (recorded for saving).
    """

    def __init__(self, backbone: Any, hidden_size: int, layers: int, source: str = "policy") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        self.layers = layers
        self.source = source

    @classmethod
    def from_policy(
        cls,
        policy_model: Any,
        layers: int,
        *,
        rank: int = 8,
        seed: int = 0,
        backbone: tuple[str, Any] | None = None,
    ) -> ExchangeClassifier:
        """A fresh classifier on the first ``layers`` blocks (0: all) with a new LoRA adapter.

        The blocks are the policy's, or those of ``backbone`` (its spec and model, from
        :func:`load_backbone`), which must share the policy's tokenizer.
        """
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)
        source, model_of = backbone if backbone is not None else ("policy", policy_model)
        layers = layers or int(model_of.config.num_hidden_layers)
        base = _truncated(model_of, layers)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=LORA_TARGETS)
        model = cls(get_peft_model(base, config), int(model_of.config.hidden_size), layers, source)
        nn.init.zeros_(model.head.weight)
        return model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        logits: torch.Tensor = self.head(hidden).squeeze(-1)
        return logits

    def save(self, folder: Path) -> None:
        """Write the adapter, the head and the layer count to ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder / "adapter")
        # The adapter rides on whatever policy loads it: record no local path, ship no template card.
        config_path = folder / "adapter" / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = None
        config_path.write_text(json.dumps(config, indent=2))
        (folder / "adapter" / "README.md").unlink(missing_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors")
        )
        meta = {"layers": self.layers, "backbone": self.source}
        (folder / "classifier.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path, policy_model: Any) -> ExchangeClassifier:
        """Rebuild a saved classifier on the weights it was trained on (the policy's, or its backbone's)."""
        from peft import PeftModel
        from safetensors.torch import load_file

        meta = json.loads((folder / "classifier.json").read_text())
        layers, source = int(meta["layers"]), str(meta.get("backbone", "policy"))
        model_of = policy_model if source == "policy" else load_backbone(source)
        backbone = PeftModel.from_pretrained(_truncated(model_of, layers), str(folder / "adapter"))
        model = cls(backbone, int(model_of.config.hidden_size), layers, source)
        model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        return model.eval()

    @torch.inference_mode()
    def token_scores(self, rows: Sequence[list[int]], batch: int = 16) -> list[list[float]]:
        """Per-token logits of each row (right-padded batches; causal, so padding cannot leak back)."""
        self.eval()
        out: list[list[float]] = []
        for start in range(0, len(rows), batch):
            ids, mask = pad(rows[start : start + batch])
            logits = self(ids, mask)
            out += [logits[i, : len(r)].tolist() for i, r in enumerate(rows[start : start + batch])]
        return out


class ClassifierStream:
    """One exchange scored incrementally: each call reads only the new tokens (a KV cache).

    The classifier is causal, so a token's score never changes when later tokens arrive; the
    cache makes re-checking a growing exchange cost the new tokens only, not the whole prefix.
    """

    def __init__(self, model: ExchangeClassifier) -> None:
        self.model = model
        self.cache: Any = None
        self.seen = 0
        self.peak = float("-inf")
        backbone = model.backbone
        self._arg = cache_kwarg(
            backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        )

    @torch.inference_mode()
    def feed(self, ids: Sequence[int]) -> float:
        """Score ``ids`` (the tokens after those already fed); returns the highest score so far."""
        if ids:
            x = torch.tensor([list(ids)], dtype=torch.long)
            mask = torch.ones((1, self.seen + len(ids)), dtype=torch.long)
            out = self.model.backbone(
                input_ids=x, attention_mask=mask, use_cache=True, **{self._arg: self.cache}
            )
            self.cache = returned_cache(out)
            self.seen += len(ids)
            self.peak = max(self.peak, float(self.model.head(out.last_hidden_state).max()))
        return self.peak

    def rewind(self, tokens: int) -> None:
        """Forget every token after the first ``tokens`` (their scores stay in the peak: fail closed)."""
        if tokens < self.seen:
            self.cache.crop(tokens)
            self.seen = tokens


def load_backbone(spec: str, policy: Any = None) -> Any:
    """The model ``spec`` names (any local model spec, e.g. ``hf:ORG/NAME`` or a folder) as a backbone.

    With ``policy`` given, its tokenizer must be the policy's: the classifier reads the
    policy's token ids, in training and while streaming.

    Raises:
        ConfigError: the spec is not a local model, or its vocabulary differs from the policy's.
    """
    from alignlab.errors import ConfigError
    from alignlab.guard.policy import load_policy

    other = load_policy(spec)
    if policy is not None:
        mine, theirs = policy.tokenizer.get_vocab(), other.tokenizer.get_vocab()
        if mine != theirs:
            raise ConfigError(
                f"classifier_backbone {spec!r} has another tokenizer than the policy ({len(theirs)} vs "
                f"{len(mine)} tokens, {len(set(mine.items()) ^ set(theirs.items()))} differ); the "
                "classifier reads the policy's token ids, so its backbone must share the tokenizer"
            )
    return other.model


def _truncated(policy_model: Any, layers: int) -> Any:
    """A copy of the policy's base model keeping its first ``layers`` blocks, frozen."""
    from transformers import AutoModel

    config = copy.deepcopy(policy_model.config)
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    build: Any = AutoModel.from_config
    base = build(config)
    state = {k: v for k, v in policy_model.base_model.state_dict().items() if _keeps(k, layers)}
    base.load_state_dict(state, strict=True)
    for param in base.parameters():
        param.requires_grad_(False)
    return base.eval()


def _keeps(key: str, layers: int) -> bool:
    parts = key.split(".")
    return parts[0] != "layers" or int(parts[1]) < layers


def streaming_loss(
    logits: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, cummax_weight: float
) -> torch.Tensor:
    """Binary cross-entropy of each token's prediction, interpolated toward its running maximum.

    ``q_t = w * max_{s<=t} p_s + (1 - w) * p_t``; a harmful exchange needs the running
    maximum to rise by its end, a harmless one needs every token low.
    """
    probs = torch.sigmoid(logits) * mask
    running = torch.cummax(probs, dim=1).values
    q = (cummax_weight * running + (1 - cummax_weight) * probs).clamp(1e-6, 1 - 1e-6)
    target = labels.unsqueeze(1).expand_as(q)
    per_token = nn.functional.binary_cross_entropy(q, target, reduction="none")
    return (per_token * mask).sum() / mask.sum()
