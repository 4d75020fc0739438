"""The activation probe: a linear read-out of the policy's own hidden states, almost free to run.

Features are the policy's activations at each token from the recipe's layers, concatenated
and standardised. Training follows Constitutional Classifiers++: per-token logits are
smoothed by a causal sliding-window mean (window 16), and the sequence loss weights each
position's cross-entropy by a softmax over the smoothed logits (temperature 1), so the
positions where the probe is most confident carry the exchange. Labels are soft: the
exchange classifier's score as teacher, mixed with the data label. At inference an
exponential moving average replaces the window, so the probe streams one token at a time.

The probe's score is the highest moving average so far, and a maximum grows with the number
of tokens it is taken over: long benign conversations reach higher peaks than short ones. A
:class:`LengthReference` (fitted on benign training traffic, see :func:`fit_length_reference`)
removes that growth: after ``n`` scored tokens the probe reports its moving average minus the
typical benign peak after ``n`` tokens, so one threshold means the same at every length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from alignlab.guard.features import FeatureStore


@dataclass(frozen=True)
class LengthReference:
    """The typical benign peak of the probe's moving average after ``n`` scored tokens.

    Stored at ``positions`` (scored-token counts, increasing) with non-decreasing ``values``;
    between them it is interpolated linearly in ``log n``, beyond them held constant.
    """

    positions: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.positions or len(self.positions) != len(self.values):
            raise ValueError("a length reference needs as many values as positions, at least one")

    def at(self, counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The reference after each of ``counts`` scored tokens (counts start at 1)."""
        logs = np.log(np.maximum(np.asarray(counts, dtype=np.float64), 1.0))
        return np.interp(logs, np.log(np.asarray(self.positions, dtype=np.float64)), self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"positions": list(self.positions), "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LengthReference:
        return cls(tuple(int(p) for p in data["positions"]), tuple(float(v) for v in data["values"]))


def fit_length_reference(
    trajectories: Sequence[Sequence[float]], *, min_rows: int = 20, quantile: float = 0.5
) -> LengthReference:
    """The benign running peak's ``quantile`` after 1, 2, 4, … scored tokens.

    ``trajectories`` are raw moving averages of benign exchanges, token by token. At each
    power of two ``n`` that at least ``min_rows`` exchanges reach, the reference is the
    quantile over those exchanges of their peak after ``n`` tokens, kept non-decreasing by a
    running maximum (a peak can only grow).

    Raises:
        ValueError: fewer than ``min_rows`` exchanges.
    """
    if len(trajectories) < min_rows:
        raise ValueError(f"a length reference needs {min_rows} benign exchanges, got {len(trajectories)}")
    peaks = [np.maximum.accumulate(np.asarray(t, dtype=np.float64)) for t in trajectories if len(t)]
    lengths = np.array([len(p) for p in peaks])
    positions, values = [], []
    n = 1
    while (lengths >= n).sum() >= min_rows:
        positions.append(n)
        values.append(float(np.quantile([p[n - 1] for p in peaks if len(p) >= n], quantile)))
        n *= 2
    return LengthReference(tuple(positions), tuple(np.maximum.accumulate(values).tolist()))


class LinearProbe(nn.Module):
    """Per-token logits from standardised concatenated activations.

    With a ``reference`` the streamed scores are length-adjusted (see the module docstring).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        layers: Sequence[int],
        window: int = 16,
        reference: LengthReference | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.linear = nn.Linear(mean.numel(), 1)
        self.layers = list(layers)
        self.window = window
        self.reference = reference

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear((features.float() - self.mean) / self.std).squeeze(-1)
        return logits

    @property
    def alpha(self) -> float:
        """The EMA rate whose memory matches the training window."""
        return 2.0 / (self.window + 1)

    def adjust(self, ema: Sequence[float], first: int = 1) -> list[float]:
        """Moving averages after ``first``, ``first + 1``, … scored tokens, less the length reference."""
        if self.reference is None:
            return list(ema)
        offsets = self.reference.at(np.arange(first, first + len(ema)))
        adjusted: list[float] = (np.asarray(ema, dtype=np.float64) - offsets).tolist()
        return adjusted

    @torch.inference_mode()
    def stream_scores(
        self, features: torch.Tensor | npt.NDArray[np.float16], *, raw: bool = False
    ) -> list[float]:
        """The EMA of per-token logits over one exchange, token by token (what serving sees).

        Length-adjusted where the probe has a reference, unless ``raw``.
        """
        logits = self.forward(torch.as_tensor(np.array(features, dtype=np.float32))).tolist()
        ema, out = logits[0], []
        for z in logits:
            ema = self.alpha * z + (1 - self.alpha) * ema
            out.append(ema)
        return out if raw else self.adjust(out)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "std": self.std, "weight": self.linear.weight, "bias": self.linear.bias}
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "probe.safetensors"))
        meta: dict[str, Any] = {"layers": self.layers, "window": self.window}
        if self.reference is not None:
            meta["length_reference"] = self.reference.to_dict()
        (folder / "probe.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> LinearProbe:
        from safetensors.torch import load_file

        meta = json.loads((folder / "probe.json").read_text())
        t = load_file(str(folder / "probe.safetensors"))
        reference = meta.get("length_reference")
        probe = cls(
            t["mean"],
            t["std"],
            meta["layers"],
            meta["window"],
            LengthReference.from_dict(reference) if reference is not None else None,
        )
        probe.linear.load_state_dict({"weight": t["weight"], "bias": t["bias"]})
        return probe.eval()


def window_mean(logits: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """Causal sliding-window mean of per-token logits over the last ``window`` real tokens."""
    z = logits * mask
    total = torch.cumsum(z, dim=1)
    count = torch.cumsum(mask, dim=1)
    shifted_total = torch.nn.functional.pad(total, (window, 0))[:, : total.shape[1]]
    shifted_count = torch.nn.functional.pad(count, (window, 0))[:, : count.shape[1]]
    return (total - shifted_total) / (count - shifted_count).clamp(min=1)


def probe_loss(logits: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, window: int) -> torch.Tensor:
    """Cross-entropy at each position of the smoothed logits, weighted by their softmax over positions."""
    smooth = window_mean(logits, mask, window)
    weights = torch.softmax(smooth.masked_fill(mask == 0, -1e9), dim=1)
    per_token = nn.functional.binary_cross_entropy_with_logits(
        smooth, labels.unsqueeze(1).expand_as(smooth), reduction="none"
    )
    return (weights * per_token * mask).sum(dim=1).mean()


def standardiser(
    store: FeatureStore, rows: Sequence[int], sample: int = 20000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature mean and standard deviation from a sample of the rows' tokens."""
    rng = np.random.default_rng(seed)
    picked = np.concatenate([np.arange(store.offsets[r], store.offsets[r + 1]) for r in rows])
    picked = np.sort(rng.choice(picked, size=min(sample, len(picked)), replace=False))
    x = torch.as_tensor(np.asarray(store.features[picked], dtype=np.float32))
    return x.mean(0), x.std(0).clamp(min=1e-3)


def train_probe(
    store: FeatureStore,
    rows: Sequence[int],
    labels: Sequence[float],
    layers: Sequence[int],
    *,
    window: int = 16,
    epochs: int = 30,
    lr: float = 1e-3,
    batch: int = 32,
    seed: int = 0,
) -> tuple[LinearProbe, list[float]]:
    """Fit a probe on the given rows of ``store``; returns it and the mean loss of each epoch."""
    from alignlab.core.progress import progress_bar
    from alignlab.models.padding import pad

    torch.manual_seed(seed)
    mean, std = standardiser(store, rows, seed=seed)
    probe = LinearProbe(mean, std, layers, window)
    optimiser = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-3)
    order = np.array(rows)
    y = dict(zip(rows, labels, strict=True))
    history = []
    with progress_bar() as bar:
        task = bar.add_task("training the probe", total=epochs)
        lengths = {int(r): len(store.rows(int(r))) for r in order}
        for epoch in range(epochs):
            rng = np.random.default_rng(seed + epoch)
            rng.shuffle(order)
            losses = []
            for chunk in _length_batches(order, lengths, batch, rng):
                feats = [torch.as_tensor(np.asarray(store.rows(int(r)), dtype=np.float32)) for r in chunk]
                x = nn.utils.rnn.pad_sequence(feats, batch_first=True)
                _, mask = pad([[0] * len(f) for f in feats])
                loss = probe_loss(probe(x), mask.float(), torch.tensor([y[int(r)] for r in chunk]), window)
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                losses.append(float(loss.detach()))
            history.append(float(np.mean(losses)))
            bar.update(task, advance=1, description=f"training the probe (loss {history[-1]:.3f})")
    return probe.eval(), history


def _length_batches(
    order: npt.NDArray[np.int64], lengths: dict[int, int], batch: int, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Batches of rows of similar length, in random order.

    Within each run of 16 batches of the shuffled order, rows are sorted by length, so a
    batch is padded to about its own rows' length and not to the longest conversation's.
    """
    out = []
    window = 16 * batch
    for start in range(0, len(order), window):
        run = sorted(order[start : start + window].tolist(), key=lambda r: lengths[int(r)])
        out += [np.array(run[i : i + batch]) for i in range(0, len(run), batch)]
    rng.shuffle(out)
    return out


def max_scores(probe: LinearProbe, store: FeatureStore, rows: Sequence[int]) -> list[float]:
    """Each row's highest streamed (EMA) probe logit: the score the cascade compares to its threshold."""
    return [max(probe.stream_scores(store.rows(int(r)))) for r in rows]
