"""The two-stage cascade and its calibration, and the scoring API the proxy calls.

Stage 1, the probe, reads the policy's activations on all traffic and only *escalates*: it
never refuses. Stage 2 ensembles the probe with the exchange classifier,
``z = w * z_probe + (1 - w) * z_classifier`` (w = 0.55 in the paper), and flags when ``z``
crosses its threshold. Thresholds are set on held-back benign *training* traffic (never on
evaluation sets) for a target escalation rate and a target final flag rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alignlab.guard.policy import GuardPolicy
from alignlab.guard.recipe import Recipe
from alignlab.guard.window import Window
from alignlab.models.base import ChatMessage


def rate_threshold(benign: npt.ArrayLike, rate: float) -> float:
    """The lowest threshold at which at most ``rate`` of ``benign`` scores reach it."""
    ordered = np.sort(np.asarray(benign, dtype=np.float64))[::-1]
    allowed = int(np.floor(rate * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], np.inf))


def calibrate(
    probe_z: Sequence[float], clf_z: Sequence[float], recipe: Recipe, **others: Sequence[float]
) -> dict[str, float]:
    """Thresholds for the cascade (and for each single-stage system in ``others``) on benign scores."""
    probe = np.asarray(probe_z)
    clf = np.asarray(clf_z)
    t1 = rate_threshold(probe, recipe.target_escalation)
    escalated = probe >= t1
    ensemble = recipe.probe_weight * probe + (1 - recipe.probe_weight) * clf
    allowed = int(np.floor(recipe.target_flag_rate * len(probe)))
    ranked = np.sort(ensemble[escalated])[::-1]
    t2 = (
        float(np.nextafter(ranked[allowed], np.inf))
        if allowed < len(ranked)
        else float(ranked.min(initial=0.0))
    )
    out = {
        "probe_threshold": t1,
        "ensemble_threshold": t2,
        "probe_weight": recipe.probe_weight,
        "classifier_threshold": rate_threshold(clf, recipe.target_flag_rate),
        "calibration_size": float(len(probe)),
        "target_escalation": recipe.target_escalation,
        "target_flag_rate": recipe.target_flag_rate,
    }
    for name, scores in others.items():
        out[f"{name}_threshold"] = rate_threshold(scores, recipe.target_flag_rate)
    return out


@dataclass
class Verdict:
    """A guard decision on one exchange."""

    flagged: bool
    stage: str
    scores: dict[str, float | None] = field(default_factory=dict)
    escalated: bool = False
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Guard:
    """A trained guard in front of one policy: probe, exchange classifier, thresholds and window.

    Args:
        policy: the local policy whose activations the probe reads.
        folder: the guard folder written by training (``guard.json``, ``probe/``, ``exchange_classifier/``).

    Raises:
        ConfigError: the folder records no prompt window (a guard from an older version).
    """

    def __init__(self, policy: GuardPolicy, folder: Path) -> None:
        from alignlab.guard.classifier import ExchangeClassifier
        from alignlab.guard.probe import LinearProbe

        self.policy = policy
        self.folder = folder
        spec = json.loads((folder / "guard.json").read_text())
        self.window = Window.from_dict(spec.get("window"), str(folder / "guard.json"))
        self.fingerprint: str | None = spec.get("fingerprint")
        self.thresholds: dict[str, float] = {
            k: float(v) for k, v in spec.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.probe = LinearProbe.load(folder / "probe")
        self.classifier = ExchangeClassifier.load(folder / "exchange_classifier", policy.model)

    def combine(self, probe_z: float, clf_z: float) -> float:
        w = self.thresholds["probe_weight"]
        return w * probe_z + (1 - w) * clf_z

    def decide(self, probe_z: float, clf_z: float | None) -> Verdict:
        """The cascade's decision from a stage-1 score and, where escalated, a classifier score."""
        escalated = probe_z >= self.thresholds["probe_threshold"]
        if not escalated or clf_z is None:
            return Verdict(
                False, "probe", {"probe": probe_z, "classifier": None, "ensemble": None}, escalated
            )
        z = self.combine(probe_z, clf_z)
        flagged = z >= self.thresholds["ensemble_threshold"]
        return Verdict(flagged, "ensemble", {"probe": probe_z, "classifier": clf_z, "ensemble": z}, True)

    def check(self, messages: Sequence[ChatMessage], response: str = "") -> Verdict:
        """Score a whole exchange (no generation) as serving scores it: same window, same scoring start.

        The policy reads the conversation and the response in one pass; the probe scores the
        window from its scoring start; the classifier reads the window where the probe escalates.
        """
        import torch

        from alignlab.guard.features import tokens_of

        start = time.perf_counter()
        tokens = tokens_of(self.policy, messages, response, window=self.window)
        layers = self.probe.layers

        def features(_: int, states: Any) -> Any:
            return states[layers].permute(1, 0, 2).reshape(states.shape[1], -1)

        (feats,) = self.policy.forward_rows([tokens.ids], features, hidden=True)
        probe_z = max(self.probe.stream_scores(feats[tokens.score_start :]))
        clf_z = None
        if probe_z >= self.thresholds["probe_threshold"]:
            with torch.inference_mode():
                clf_z = max(self.classifier.token_scores([tokens.scored])[0])
        verdict = self.decide(probe_z, clf_z)
        verdict.latency_ms = (time.perf_counter() - start) * 1000
        return verdict
