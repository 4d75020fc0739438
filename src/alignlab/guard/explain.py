"""``alignlab guard explain``: a conversation's per-token guard trace as a plot and an HTML page.

For debugging a false positive (or a miss): every scored token with the probe's running score
against its escalation threshold, where the exchange escalated, and from there the exchange
classifier's running maximum and the ensemble score against the flag threshold — the trace
the chat page draws while serving, here for any conversation, scored as serving scores it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignlab.guard.cascade import Guard
from alignlab.models.base import ChatMessage


def explain(guard: Guard, messages: Sequence[ChatMessage], response: str = "") -> dict[str, Any]:
    """The per-token trace of one exchange: ``steps`` (token text and scores), thresholds, verdict."""
    import torch

    from alignlab.guard.features import tokens_of

    t = guard.thresholds
    tokens = tokens_of(guard.policy, messages, response, window=guard.window)
    layers = guard.probe.layers
    (feats,) = guard.policy.forward_rows(
        [tokens.ids], lambda _, s: s[layers].permute(1, 0, 2).reshape(s.shape[1], -1), hidden=True
    )
    probe = guard.probe.stream_scores(feats[tokens.score_start :])
    peak = np.maximum.accumulate(np.array(probe))
    with torch.inference_mode():
        clf = np.maximum.accumulate(np.array(guard.classifier.token_scores([tokens.scored])[0]))
    escalated = [i for i, p in enumerate(peak) if p >= t["probe_threshold"]]
    at = escalated[0] if escalated else None
    w = t["probe_weight"]
    steps = []
    for i, token_id in enumerate(tokens.scored):
        late = at is not None and i >= at
        steps.append(
            {
                "token": guard.policy.tokenizer.decode([token_id]),
                "response": i + tokens.score_start >= tokens.response_start,
                "probe": float(probe[i]),
                "classifier": float(clf[i]) if late else None,
                "ensemble": float(w * peak[i] + (1 - w) * clf[i]) if late else None,
            }
        )
    verdict = guard.decide(float(peak[-1]), float(clf[-1]) if at is not None else None)
    keep = ("probe_threshold", "ensemble_threshold", "probe_weight")
    return {
        "verdict": verdict.to_dict(),
        "thresholds": {k: t[k] for k in keep},
        "escalated_at": at,
        "steps": steps,
        "window": guard.window.to_dict(),
    }


def plot(trace: dict[str, Any]) -> bytes:
    """The trace as a PNG: running scores per token, thresholds dashed, escalation marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, t = trace["steps"], trace["thresholds"]
    x = np.arange(len(steps))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(x, [s["probe"] for s in steps], color="#1f5fbf", label="probe (running EMA)")
    ax.axhline(
        t["probe_threshold"], color="#1f5fbf", linestyle="--", linewidth=1, label="escalation threshold"
    )
    ens = [np.nan if s["ensemble"] is None else s["ensemble"] for s in steps]
    if not np.all(np.isnan(ens)):
        ax.plot(x, ens, color="#bf2f1f", label="ensemble")
        ax.axhline(
            t["ensemble_threshold"], color="#bf2f1f", linestyle="--", linewidth=1, label="flag threshold"
        )
    if trace["escalated_at"] is not None:
        ax.axvline(trace["escalated_at"], color="#999", linewidth=1, label="escalated")
    first_reply = next((i for i, s in enumerate(steps) if s["response"]), None)
    if first_reply is not None:
        ax.axvspan(first_reply - 0.5, len(steps) - 0.5, color="#f3f3f3", zorder=0, label="reply")
    verdict = trace["verdict"]
    ax.set(xlabel="scored token", ylabel="score", title=f"{'flagged' if verdict['flagged'] else 'passed'}"
           f" (decided by {verdict['stage']})")  # fmt: skip
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def page(trace: dict[str, Any], png: bytes) -> str:
    """An HTML page: the plot, the verdict, and every scored token with its scores."""
    rows = "".join(
        f"<tr class='{'reply' if s['response'] else 'prompt'}'><td>{i}</td>"
        f"<td><code>{html.escape(repr(s['token']))}</code></td><td>{s['probe']:.3f}</td>"
        f"<td>{_num(s['classifier'])}</td><td>{_num(s['ensemble'])}</td></tr>"
        for i, s in enumerate(trace["steps"])
    )
    v = trace["verdict"]
    return (
        "<!doctype html><meta charset='utf-8'><title>guard trace</title>"
        "<style>body{font-family:system-ui;margin:2rem}td,th{padding:0 .6rem;text-align:right}"
        "tr.reply{background:#f6f6f6}</style>"
        f"<h1>guard trace: {'flagged' if v['flagged'] else 'passed'} ({html.escape(str(v['stage']))})</h1>"
        f"<p>escalated at token {trace['escalated_at']}; thresholds {html.escape(str(trace['thresholds']))};"
        f" window {html.escape(str(trace['window']))}</p>"
        f"<img alt='trace' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        "<table><tr><th>#</th><th>token</th><th>probe</th><th>classifier</th><th>ensemble</th></tr>"
        f"{rows}</table>"
    )


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def write(trace: dict[str, Any], out: Path) -> Path:
    """``out`` as ``.png`` (the plot) or ``.html`` (plot, verdict and token table)."""
    png = plot(trace)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        out.write_bytes(png)
    else:
        out.write_text(page(trace, png), encoding="utf-8")
    return out
