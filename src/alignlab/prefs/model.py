"""The preference model: a causal LM backbone with a scalar head read at an end-of-context token.

Each response is followed by an explicit end-of-context token and the score is the head's
output on the final hidden state at that token, found by position (never by searching for
a token id). Attention masks and position ids come from the real lengths, so a score does
not depend on the batch it is in or on the side it was padded on. The pad token must
differ from the end-of-context token: a pad equal to the token the score is read at is
how rewards get read at the wrong place, so it is an error here.

The same model also scores by likelihood (the mean log-probability of a response), which
is what the imitation objective trains.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from alignlab.core.config import option
from alignlab.errors import ConfigError, DependencyError, ModelNotFoundError
from alignlab.models.kvcache import cache_argument, returned_cache
from alignlab.models.padding import PaddingSide
from alignlab.prefs.backbone import backbone_path, keep_layers
from alignlab.prefs.batch import Batch, Encoder, Layout, Packed, collate, pack
from alignlab.prefs.data import Ranking

if TYPE_CHECKING:
    import torch

ScoreWith = Literal["value", "likelihood"]
PM_FILE = "preference_model.json"
HEAD_FILE = "head.safetensors"


def import_torch() -> Any:
    """``torch``, or a :class:`DependencyError` naming the extra that provides it."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise DependencyError(exc.name or "torch", "hf") from exc
    return torch


@dataclass(frozen=True)
class ModelConfig:
    """How to build a preference model from a backbone."""

    model: str = option(
        "smollm2", "backbone: 'smollm2', a transformers model folder or a saved preference model"
    )
    end_token: str = option(
        "<|im_end|>", "end-of-context token appended to each response; the score is read there"
    )
    pad_token: str = option("<|endoftext|>", "padding token; must differ from the end-of-context token")
    max_tokens: int = option(
        512, "most tokens per context + response; contexts are cut from the left, counted"
    )
    layers: int = option(0, "keep only the first N transformer layers (0 keeps all), for small fast runs")


@dataclass
class Output:
    """What a forward pass gives per response row.

    Attributes:
        scores: ``(N,)`` the value head at the end-of-context token.
        logprob_sum, token_count: ``(N,)`` the response's summed token log-probability and its
            token count, when the likelihood was asked for.
    """

    scores: torch.Tensor
    logprob_sum: torch.Tensor | None = None
    token_count: torch.Tensor | None = None


class PreferenceModel:
    """A causal LM with a scalar head; see the module docstring.

    Args:
        lm: a transformers causal LM (possibly wrapped by peft).
        tokenizer: its tokenizer.
        end_token: the end-of-context token.
        pad_token: the padding token.
        max_tokens: most tokens per context + response.
        score_with: ``"value"`` (the head) or ``"likelihood"`` (mean response log-probability).
        head: a ``Linear(hidden, 1)``; a new one when omitted.

    Raises:
        ConfigError: a token is not in the vocabulary, or the pad token equals the end token.
    """

    def __init__(
        self,
        lm: Any,
        tokenizer: Any,
        *,
        end_token: str,
        pad_token: str,
        max_tokens: int = 512,
        score_with: ScoreWith = "value",
        head: Any = None,
    ) -> None:
        torch = import_torch()
        self.lm = lm
        self.tokenizer = tokenizer
        self.end_token, self.pad_token = end_token, pad_token
        self.end_id = _token_id(tokenizer, end_token, "end-of-context")
        self.pad_id = _token_id(tokenizer, pad_token, "pad")
        if self.pad_id == self.end_id:
            raise ConfigError(
                f"the pad token {pad_token!r} is the end-of-context token the score is read at; "
                "choose another pad token (e.g. --pad-token '<|endoftext|>')"
            )
        self.max_tokens = max_tokens
        self.score_with: ScoreWith = score_with
        hidden = lm.config.get_text_config().hidden_size
        if head is None:
            head = torch.nn.Linear(hidden, 1)
            torch.nn.init.normal_(head.weight, std=1.0 / (hidden + 1) ** 0.5)
            torch.nn.init.zeros_(head.bias)
        self.head = head
        self.encoder = Encoder(tokenizer, self.end_id, max_tokens)

    # -- building ---------------------------------------------------------------------

    @classmethod
    def build(cls, config: ModelConfig, score_with: ScoreWith = "value") -> PreferenceModel:
        """A preference model from ``config``: a new head on a backbone, or a saved model.

        Raises:
            ModelNotFoundError: nothing loadable at ``config.model``.
            ConfigError: bad tokens (see the class).
        """
        path = backbone_path(config.model)
        if (path / PM_FILE).is_file():
            return cls.load(path)
        torch = import_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if config.layers:
            keep_layers(lm, config.layers)
        return cls(
            lm,
            tokenizer,
            end_token=config.end_token,
            pad_token=config.pad_token,
            max_tokens=config.max_tokens,
            score_with=score_with,
        )

    @classmethod
    def load(cls, path: str | Path) -> PreferenceModel:
        """Load a model written by :meth:`save`.

        Raises:
            ModelNotFoundError: ``path`` holds no saved preference model.
        """
        torch = import_torch()
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if not (path / PM_FILE).is_file():
            raise ModelNotFoundError(f"{path} holds no {PM_FILE}; is it a saved preference model?")
        meta = json.loads((path / PM_FILE).read_text())
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        state = load_file(path / HEAD_FILE)
        head = torch.nn.Linear(state["weight"].shape[1], 1)
        head.load_state_dict(state)
        return cls(
            lm,
            AutoTokenizer.from_pretrained(path),
            end_token=meta["end_token"],
            pad_token=meta["pad_token"],
            max_tokens=meta["max_tokens"],
            score_with=meta["score_with"],
            head=head,
        )

    def save(self, path: str | Path) -> Path:
        """Write backbone, tokenizer, head and settings to ``path`` (LoRA adapters merged in, in place)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if hasattr(self.lm, "merge_and_unload"):  # LoRA: fold the adapters into the weights, for good
            self.lm = self.lm.merge_and_unload()
        self.lm.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        save_file({k: v.detach().contiguous() for k, v in self.head.state_dict().items()}, path / HEAD_FILE)
        meta = {
            "end_token": self.end_token,
            "pad_token": self.pad_token,
            "max_tokens": self.max_tokens,
            "score_with": self.score_with,
        }
        (path / PM_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return path

    def modules(self) -> Any:
        """A ``torch.nn.ModuleDict`` of the trainable parts (backbone and head)."""
        torch = import_torch()
        return torch.nn.ModuleDict({"lm": self.lm, "head": self.head})

    # -- computing --------------------------------------------------------------------

    def batch(
        self, rankings: Sequence[Ranking], *, layout: Layout = "packed", padding_side: PaddingSide = "right"
    ) -> Batch | Packed:
        """Tokenise and lay out ``rankings`` (truncation is counted in ``self.encoder.truncation``).

        ``padding_side`` applies to the ``shared`` and ``rows`` layouts; ``packed`` has no padding
        between sequences.
        """
        encoded = [self.encoder.encode(r) for r in rankings]
        if layout == "packed":
            return pack(encoded, self.pad_id)
        if layout not in ("shared", "rows"):
            raise ConfigError(f"unknown batch layout {layout!r}: packed, shared or rows")
        return collate(encoded, self.pad_id, shared=layout == "shared", padding_side=padding_side)

    def forward(self, batch: Batch | Packed, *, likelihood: bool = False) -> Output:
        """Scores of every response; with ``likelihood``, also their token log-probabilities."""
        if isinstance(batch, Packed):
            return self._forward_packed(batch, likelihood)
        torch = import_torch()
        from transformers import DynamicCache

        decoder = self.lm.get_decoder()
        n = batch.ids.shape[0]
        mask, offset = batch.mask, torch.zeros(n, dtype=torch.long, device=batch.ids.device)
        cache, last = None, None
        if batch.context_ids.shape[1]:
            context = decoder(
                input_ids=batch.context_ids,
                attention_mask=batch.context_mask,
                position_ids=_positions(batch.context_mask),
                use_cache=True,
            )
            # Each response row gets its own view of its context's keys and values: computed once.
            cache = DynamicCache(
                ddp_cache_data=[
                    (layer.keys[batch.owner], layer.values[batch.owner])
                    for layer in returned_cache(context).layers
                ]
            )
            last = context.last_hidden_state[batch.owner, -1]
            mask = torch.cat([batch.context_mask[batch.owner], batch.mask], dim=1)
            offset = batch.context_mask.sum(dim=1)[batch.owner]
        out = decoder(
            input_ids=batch.ids,
            attention_mask=mask,
            position_ids=offset[:, None] + _positions(batch.mask),
            use_cache=cache is not None,
            **cache_argument(decoder, cache),
        )
        hidden = out.last_hidden_state
        rows = torch.arange(n, device=hidden.device)
        scores = self.head(hidden[rows, batch.end_index]).squeeze(-1)
        if not likelihood:
            return Output(scores)
        # A token is predicted from the real token before it: in its row, or else the context's last.
        first = (last[:, None] if last is not None else torch.zeros_like(hidden[:, :1])).expand_as(hidden)
        shifted = torch.cat([torch.zeros_like(hidden[:, :1]), hidden[:, :-1]], dim=1)
        prev_real = torch.cat([torch.zeros_like(batch.mask[:, :1]), batch.mask[:, :-1]], dim=1).bool()
        before = torch.where(prev_real[..., None], shifted, first)[batch.target]
        logits = self.lm.get_output_embeddings()(before).float()
        token_lp = torch.log_softmax(logits, dim=-1).gather(1, batch.ids[batch.target][:, None]).squeeze(1)
        row_of = rows[:, None].expand_as(batch.target)[batch.target]
        total = torch.zeros(n, device=hidden.device).index_add(0, row_of, token_lp)
        return Output(scores, total, batch.target.sum(dim=1))

    def _forward_packed(self, batch: Packed, likelihood: bool) -> Output:
        torch = import_torch()
        decoder = self.lm.get_decoder()
        dtype = next(decoder.parameters()).dtype
        # An additive mask (0 where allowed) works with every attention implementation.
        mask = torch.zeros(batch.allowed.shape, dtype=dtype, device=batch.ids.device)
        mask = mask.masked_fill(~batch.allowed, torch.finfo(dtype).min)
        out = decoder(input_ids=batch.ids, attention_mask=mask, position_ids=batch.positions, use_cache=False)
        hidden = out.last_hidden_state.flatten(0, 1)
        scores = self.head(hidden[batch.end_at]).squeeze(-1)
        if not likelihood:
            return Output(scores)
        logits = self.lm.get_output_embeddings()(hidden[batch.before_at]).float()
        targets = batch.ids.flatten()[batch.target_at]
        token_lp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
        total = torch.zeros(len(batch.end_at), device=hidden.device).index_add(0, batch.target_row, token_lp)
        return Output(scores, total, batch.token_count)

    def score(
        self,
        rankings: Sequence[Ranking],
        *,
        batch_size: int = 8,
        layout: Layout = "packed",
        padding_side: PaddingSide = "right",
    ) -> list[list[float]]:
        """The score of every response of every ranking, in input order (no gradients).

        Scores come from the head, or with ``score_with == "likelihood"`` are mean response
        log-probabilities; they do not depend on ``batch_size``, ``layout`` or ``padding_side``.
        """
        torch = import_torch()
        was_training = self.lm.training
        self.lm.eval()
        self.head.eval()
        results: list[list[float]] = []
        try:
            with torch.no_grad():
                for start in range(0, len(rankings), batch_size):
                    batch = self.batch(
                        rankings[start : start + batch_size], layout=layout, padding_side=padding_side
                    )
                    out = self.forward(batch.to(self.device), likelihood=self.score_with == "likelihood")
                    values = out.scores
                    if self.score_with == "likelihood":
                        assert out.logprob_sum is not None and out.token_count is not None
                        values = out.logprob_sum / out.token_count.clamp(min=1)
                    flat = values.float().cpu().tolist()
                    results += [flat[first : first + count] for first, count in batch.spans]
        finally:
            self.lm.train(was_training)
            self.head.train(was_training)
        return results

    @property
    def device(self) -> Any:
        return next(self.head.parameters()).device


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only, so padding (left or right) shifts nothing."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _token_id(tokenizer: Any, token: str, role: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ConfigError(
            f"the {role} token {token!r} is not one token of this tokenizer (it encodes as {ids})"
        )
    return int(ids[0])
