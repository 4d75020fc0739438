"""Load on the guarded assistant: concurrent streaming clients, guarded and unguarded, in one run.

Starts ``alignlab serve --model smollm2`` twice on 127.0.0.1 — with ``--guard none`` and with
``--guard default`` — and runs the same bounded load against each in alternating rounds:
``--clients`` streaming clients for ``--seconds`` seconds, each sending benign chat requests
one after another. A share of the clients (``--borderline-share``) send borderline requests
from the guard's *training* sources instead (CyberSecEval's borderline-benign cyber prompts, the
training half: data the guard was fitted on, never evaluation data), so some exchanges
escalate and the exchange classifier's per-token reads are in the figure. Tokens/s is also
reported per kind of client, since a flagged exchange ends early and frees the server. Reports
errors, p50/p95/p99 latency, time to first token and tokens/s (medians over rounds, each round
kept), the guard's cost in tokens/s and its counters (escalations, flags, ``released_unread``).
A third server runs a copy of the shipped guard whose thresholds escalate every exchange and
flag none, so the exchange classifier reads every token of every answer: the release rule's
worst case on exactly the unguarded server's work. Only one server is loaded at a time; the
idle ones wait.

    python benchmarks/guard_load.py [--clients 32] [--seconds 60] [--tokens 32] [--rounds 3]
        [--borderline-share 0.25] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import guard_stamp, median, percentile, served, write
from models import chats
from serve import one

BORDERLINE_SOURCES = ("cyberseceval:mitre_frr",)
"""Borderline-*benign* training requests: they should escalate and still be answered, so the guard's per-token
classifier cost is measured on work both servers do, not cut short by refusals."""


def borderline(data_dir: str | None, n: int) -> list[Any]:
    """``n`` borderline chats from the guard's training sources, alternating sources, first by hash."""
    from alignlab.guard.seeds import data_dir as find_data
    from alignlab.guard.seeds import dataset_seeds

    seeds = [s for s in dataset_seeds(find_data(data_dir), 10**6) if s.source in BORDERLINE_SOURCES]
    by_source = [[s for s in seeds if s.source == src] for src in BORDERLINE_SOURCES]
    mixed = [pool[i] for i in range(n) for pool in by_source if i < len(pool)][:n]
    return [[{"role": "user", "content": s.text}] for s in mixed]


def mix(clients: int, share: float, data_dir: str | None) -> tuple[list[Any], list[str]]:
    """The clients' chats and kinds: benign everyday requests, every ``1/share``-th one borderline."""
    prompts, kinds = chats(clients), ["benign"] * clients
    picks = [i for i in range(clients) if share > 0 and int((i + 1) * share) > int(i * share)]
    for i, chat in zip(picks, borderline(data_dir, len(picks)), strict=False):
        prompts[i], kinds[i] = chat, "borderline"
    return prompts, kinds


async def load(
    url: str, prompts: list[Any], seconds: float, tokens: int, kinds: list[str] | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    firsts: list[float] = []
    produced = 0
    errors = 0
    deadline = time.perf_counter() + seconds
    clients = len(prompts)
    kinds = kinds or ["benign"] * clients
    by_kind: dict[str, int] = dict.fromkeys(kinds, 0)

    async def client(http: httpx.AsyncClient, i: int) -> None:
        nonlocal produced, errors
        while time.perf_counter() < deadline:
            try:
                took, first, n = await one(http, prompts[i], tokens, True)
            except (httpx.HTTPError, ValueError):
                errors += 1
                continue
            latencies.append(took)
            firsts.append(first)
            produced += n
            by_kind[kinds[i]] += n

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "tok_s": produced / wall,
        **{f"{kind}_tok_s": n / wall for kind, n in by_kind.items()},
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "ttft_p50_s": median(firsts) if firsts else None,
    }


def always_escalated(folder: Path) -> str:
    """A copy of the shipped guard whose thresholds escalate every exchange and flag none.

    Every token of every answer is then read by the exchange classifier as well as the probe:
    the release rule's worst case, and the same work as on the unguarded server.
    """
    from alignlab.guard.load import packaged_guard

    target = folder / "escalated-guard"
    shutil.copytree(packaged_guard(), target)
    spec = json.loads((target / "guard.json").read_text())
    spec.update(probe_threshold=-1e30, ensemble_threshold=1e30)
    (target / "guard.json").write_text(json.dumps(spec))
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per server; medians reported"
    )
    parser.add_argument(
        "--borderline-share", type=float, default=0.25, help="share of clients sending borderline requests"
    )
    parser.add_argument(
        "--data-dir",
        default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
        help="shared datasets folder (default: ../shared/data beside the project)",
    )
    args = parser.parse_args()
    prompts, kinds = mix(args.clients, args.borderline_share, args.data_dir)
    rounds: dict[str, list[dict[str, Any]]] = {"none": [], "default": [], "escalated": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        served("--model", "smollm2", "--guard", "none") as plain,
        served("--model", "smollm2", "--guard", "default") as guarded,
        served("--model", "smollm2", "--guard", always_escalated(Path(tmp))) as escalated,
    ):
        urls = {"none": plain, "default": guarded, "escalated": escalated}
        for url in urls.values():
            asyncio.run(load(url, prompts[:4], 5, 4))  # warm-up, untimed
        for i in range(args.rounds):  # alternate, so background load falls on every server alike
            for guard, url in urls.items():
                rounds[guard].append(asyncio.run(load(url, prompts, args.seconds, args.tokens, kinds)))
                print(f"round {i} guard={guard}: {rounds[guard][-1]['tok_s']:.1f} tok/s", flush=True)
        stats = httpx.get(f"{guarded}/v1/guard/stats").json()
        escalated_stats = httpx.get(f"{escalated}/v1/guard/stats").json()
    summary = {guard: summarise(runs) for guard, runs in rounds.items()}
    write(
        "guard_load",
        {
            "guard_sha256_16": guard_stamp("default"),
            "clients": args.clients,
            "seconds": args.seconds,
            "max_tokens": args.tokens,
            "rounds": args.rounds,
            "borderline_share": args.borderline_share,
            "borderline_sources": list(BORDERLINE_SOURCES),
            "unguarded": summary["none"],
            "guarded": {**summary["default"], "guard_stats": stats},
            "guard_tok_s_cost": 1 - summary["default"]["tok_s"] / summary["none"]["tok_s"],
            "guard_benign_tok_s_cost": 1
            - summary["default"]["benign_tok_s"] / summary["none"]["benign_tok_s"],
            "escalated": {**summary["escalated"], "guard_stats": escalated_stats},
            "escalated_tok_s_cost": 1 - summary["escalated"]["tok_s"] / summary["none"]["tok_s"],
            "per_round": {
                "unguarded": rounds["none"],
                "guarded": rounds["default"],
                "escalated": rounds["escalated"],
            },
        },
    )


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of every figure; requests and errors summed."""
    keys = [k for k in runs[0] if k not in ("requests", "errors")]
    out: dict[str, Any] = {
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
    }
    out.update({k: median([r[k] for r in runs if r[k] is not None]) for k in keys})
    return out


if __name__ == "__main__":
    main()
