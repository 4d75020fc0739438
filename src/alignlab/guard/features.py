"""Token views of an exchange, and the policy activations the probe is trained on.

An exchange is the conversation (with the chat template and assistant header) followed by
the response. Classifiers see the whole exchange, the input only, or the output only; the
probe sees the policy's hidden states at every token, from the layers the recipe selects,
concatenated. Activations are stored as float16 memory-mapped arrays in the guard's work
folder, so a few hundred thousand tokens fit on disk rather than in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from alignlab.guard.policy import GuardPolicy
from alignlab.guard.window import Window, fit_context, prompt_view
from alignlab.models.base import ChatMessage

View = Literal["exchange", "input", "output"]


@dataclass(frozen=True)
class Tokens:
    """Token ids of one example as the policy reads them, and where its response and its scoring start."""

    ids: list[int]
    response_start: int
    score_start: int = 0

    @property
    def scored(self) -> list[int]:
        """The tokens every stage scores: what a classifier reads, where the probe's score runs."""
        return self.ids[self.score_start :]


def tokens_of(
    policy: GuardPolicy,
    messages: Sequence[ChatMessage],
    response: str,
    *,
    view: View = "exchange",
    window: Window,
) -> Tokens:
    """One view of an exchange under the guard's prompt window (see :mod:`alignlab.guard.window`).

    The conversation is cut from the left only where it would not fit the policy's context,
    so no item fails on its length.
    """
    answer = list(policy.tokenizer(response, add_special_tokens=False)["input_ids"]) if response else []
    if view == "output":
        header = assistant_header(policy)
        return Tokens(header + answer, len(header))
    prompt = fit_context(prompt_view(policy, list(messages), window), len(answer), policy.context_length)
    if view == "input":
        return Tokens(prompt.ids, len(prompt.ids), prompt.start)
    return Tokens(prompt.ids + answer, len(prompt.ids), prompt.start)


def assistant_header(policy: GuardPolicy) -> list[int]:
    """The tokens the chat template puts before an assistant reply."""
    chat: list[ChatMessage] = [{"role": "user", "content": "x"}]
    plain = policy.tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=True)
    plain_ids = plain["input_ids"] if hasattr(plain, "keys") else plain
    return list(policy.encode(chat)[len(plain_ids) :])


def probe_layers(num_layers: int, stride: int) -> list[int]:
    """Hidden-state indices the probe reads: every ``stride``-th layer, always ending at the last."""
    return list(range(num_layers, 0, -stride))[::-1]


@dataclass
class FeatureStore:
    """Per-token features of many exchanges in one ``(tokens, features)`` float16 array."""

    features: npt.NDArray[np.float16]
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, i: int) -> npt.NDArray[np.float16]:
        return self.features[self.offsets[i] : self.offsets[i + 1]]

    @classmethod
    def open(cls, folder: Path) -> FeatureStore:
        offsets = np.load(folder / "offsets.npy")
        return cls(np.load(folder / "features.npy", mmap_mode="r"), offsets)


def extract(
    policy: GuardPolicy,
    token_rows: list[Tokens],
    layers: list[int],
    root: Path,
    batch: int = 64,
    *,
    policy_key: str,
) -> FeatureStore:
    """Write the policy's activations for every scored token of every row under ``root`` and open them.

    The folder is named by what the activations depend on (``policy_key``, naming the policy's
    weights, the token rows and the layers), so a training run that changes only how the
    classifiers or the probe train reuses a complete earlier extraction instead of redoing it.
    """
    from alignlab.core.progress import progress_bar

    digest = hashlib.sha256(json.dumps([[t.ids, t.score_start] for t in token_rows]).encode()).hexdigest()
    signature = {"policy": policy_key, "rows": len(token_rows), "tokens": digest, "layers": layers}
    folder = root / hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()) == signature:
        return FeatureStore.open(folder)
    lengths = np.array([len(t.scored) for t in token_rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    width = len(layers) * int(policy.model.config.hidden_size)
    store = np.lib.format.open_memmap(
        folder / "features.npy", mode="w+", dtype=np.float16, shape=(int(offsets[-1]), width)
    )
    with progress_bar() as bar:
        task = bar.add_task("policy activations", total=len(token_rows))
        for start in range(0, len(token_rows), batch):
            chunk = token_rows[start : start + batch]

            def keep(r: int, states: Any, first: int = start) -> None:
                row = (
                    states[layers].permute(1, 0, 2).reshape(states.shape[1], -1)
                )  # (tokens, layers * hidden)
                scored = row[token_rows[first + r].score_start :]  # the policy read it all; stages score this
                store[offsets[first + r] : offsets[first + r + 1]] = scored.numpy().astype(np.float16)

            policy.forward_rows([t.ids for t in chunk], keep, hidden=True)
            bar.update(task, advance=len(chunk))
    store.flush()
    np.save(folder / "offsets.npy", offsets)
    meta.write_text(json.dumps(signature))
    return FeatureStore.open(folder)
