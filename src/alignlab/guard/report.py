"""The guard evaluation's pictures and page: ROC curves, cost versus recall, and an HTML report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignlab.guard.evaluate import systems


def plots(
    records: Sequence[dict[str, Any]], t: dict[str, float], results: dict[str, Any], folder: Path
) -> list[str]:
    """ROC curves per score and cost versus recall per system, as PNG files in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    labelled = [r for r in records if r.get("augmentation", "plain") == "plain"]
    y = [r["label"] for r in labelled]
    fig, ax = plt.subplots(figsize=(5, 4))
    if len(set(y)) == 2:
        w = t["probe_weight"]
        scores = {
            "probe": [r["probe_z"] for r in labelled],
            "exchange classifier": [r["classifier_z"] for r in labelled],
            "ensemble": [w * r["probe_z"] + (1 - w) * r["classifier_z"] for r in labelled],
            "input classifier": [r["input_z"] for r in labelled],
        }
        for name, s in scores.items():
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(y, s):.2f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on evaluation exchanges")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "roc.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    for name in systems(t):
        row = results[name]
        if row["recall"] and row["relative_compute"] is not None:
            ax.scatter(row["relative_compute"], row["recall"]["rate"], label=name)
    ax.set(
        xscale="log", xlabel="compute relative to the exchange classifier", ylabel="recall on harmful sets"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "cost_recall.png", dpi=120)
    plt.close(fig)
    return ["roc.png", "cost_recall.png"]


def html_report(results: dict[str, Any], images: Sequence[str]) -> str:
    """A self-contained page: the table, then the plots."""
    names = [n for n in results if isinstance(results.get(n), dict) and "sets" in results[n]]
    columns = ["system", "relative compute", "recall", "benign traffic flag rate", "over-refusal"]
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"

    def cell(v: Any) -> str:
        return "-" if v is None else f"{v['rate']:.1%} (n={v['n']})"

    rows = "".join(
        f"<tr><td>{n}</td><td>{results[n]['relative_compute']:.4f}</td><td>{cell(results[n]['recall'])}</td>"
        f"<td>{cell(results[n]['benign_traffic_flag_rate'])}</td><td>{cell(results[n]['over_refusal'])}</td></tr>"
        for n in names
    )
    pics = "".join(f'<img src="{i}" alt="{i}">' for i in images)
    detail = json.dumps(results, indent=1)
    return (
        "<!doctype html><meta charset=utf-8><title>alignlab guard evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ccc}</style>"
        f"<h1>Guard evaluation</h1><table>{head}{rows}</table>{pics}<h2>All figures</h2><pre>{detail}</pre>"
    )
