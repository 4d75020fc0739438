"""A self-contained HTML report of an evaluation: the summary, pass@k versus k, the rankers.

The page needs nothing beside itself: its plots are PNGs drawn with matplotlib (the Agg
backend, no display) and embedded as base64 data URIs. matplotlib is imported only when
a report is written.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from alignlab.code.passk import estimate_pass_at_k
from alignlab.code.problems import numbered_records
from alignlab.errors import DependencyError

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
    "text-align:left}th{background:#f4f4f4}img{max-width:100%}"
)


def pass_at_k_curve(records: Iterable[Mapping[str, Any]]) -> dict[int, float]:
    """Mean pass@k over tasks for every k from 1 to the smallest per-task sample count."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        by_task[str(record["task_id"])].append(bool(record["passed"]))
    if not by_task:
        return {}
    counts = [(len(v), sum(v)) for v in by_task.values()]
    fewest = min(n for n, _ in counts)
    return {
        k: sum(estimate_pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in range(1, fewest + 1)
    }


def write_report(
    path: str | os.PathLike[str],
    summary: Mapping[str, Any],
    results_path: str | os.PathLike[str],
    ranking: Mapping[str, float] | None = None,
    *,
    title: str = "alignlab code evaluation",
) -> Path:
    """Write the HTML report; returns its path.

    Args:
        path: the HTML file to write.
        summary: the summary from :func:`alignlab.code.evaluate.evaluate`.
        results_path: its per-sample results JSONL (for the pass@k curve over every k).
        ranking: pass@1 under each ranker (from :func:`alignlab.code.ranking.pass_at_1_by_ranker`),
            or None to leave the ranking section out.
        title: the page title.

    Raises:
        DataError: the results file is missing or malformed.
        DependencyError: matplotlib is not installed.
    """
    curve = pass_at_k_curve(record for _, record in numbered_records(Path(results_path)))
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        _table(_summary_rows(summary)),
        "<h2>pass@k versus k</h2>",
        _image(_curve_figure(curve), "pass@k versus k"),
        _table([(f"pass@{k}", f"{v:.4f}") for k, v in curve.items()]),
    ]
    if ranking:
        sections += [
            "<h2>pass@1 by ranker</h2>",
            _image(_ranking_figure(ranking), "pass@1 by ranker"),
            _table([(name, f"{value:.4f}") for name, value in ranking.items()]),
        ]
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out


def _summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [(name, f"{value:.4f}") for name, value in summary.get("pass_at_k", {}).items()]
    rows += [(key, str(summary[key])) for key in ("samples", "tasks", "cpu_seconds") if key in summary]
    rows += [(f"verdict: {name}", str(count)) for name, count in summary.get("verdicts", {}).items()]
    isolation = summary.get("isolation") or {}
    layers = [name for name, on in isolation.items() if on is True]
    if isolation:
        rows.append(("isolation", ", ".join(layers) or "resource limits only"))
        rows += [("isolation warning", str(w)) for w in isolation.get("warnings", [])]
    provenance = summary.get("provenance") or {}
    rows += [
        (f"provenance: {key}", str(provenance[key])) for key in ("version", "data_hash") if key in provenance
    ]
    return rows


def _table(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise DependencyError("matplotlib", "code") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _curve_figure(curve: Mapping[int, float]) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(list(curve), list(curve.values()), marker="o")
    if len(curve) > 10:
        axes.set_xscale("log")
    axes.set(xlabel="k (samples allowed)", ylabel="pass@k", ylim=(0, 1.02), title="pass@k versus k")
    axes.grid(alpha=0.3)
    return _png(figure)


def _ranking_figure(ranking: Mapping[str, float]) -> bytes:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.bar(list(ranking), list(ranking.values()), color="#4c72b0")
    axes.set(ylabel="pass@1 of the picked sample", ylim=(0, 1.02), title="pass@1 by ranker")
    axes.grid(alpha=0.3, axis="y")
    return _png(figure)
