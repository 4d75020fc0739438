"""Load on the guarded assistant: concurrent streaming clients, guarded and unguarded, in one run.

Starts ``alignlab serve --model smollm2`` twice on 127.0.0.1 — with ``--guard none`` and with
``--guard default`` — and runs the same bounded load against each in alternating rounds:
``--clients`` streaming clients for ``--seconds`` seconds, each sending benign chat requests
one after another. Reports errors, p50/p95/p99 latency, time to first token and tokens/s
(medians over rounds, each round kept), and the guard's cost in tokens/s. Only one server is
loaded at a time; the idle one waits.

    python benchmarks/guard_load.py [--clients 32] [--seconds 60] [--tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from common import median, percentile, served, write
from models import chats
from serve import one


async def load(url: str, clients: int, seconds: float, tokens: int) -> dict[str, Any]:
    latencies: list[float] = []
    firsts: list[float] = []
    produced = 0
    errors = 0
    deadline = time.perf_counter() + seconds
    prompts = chats(clients)

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

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await asyncio.gather(*(client(http, i) for i in range(clients)))
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "tok_s": produced / wall,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "ttft_p50_s": median(firsts) if firsts else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per server; medians reported"
    )
    args = parser.parse_args()
    rounds: dict[str, list[dict[str, Any]]] = {"none": [], "default": []}
    with (
        served("--model", "smollm2", "--guard", "none") as plain,
        served("--model", "smollm2", "--guard", "default") as guarded,
    ):
        urls = {"none": plain, "default": guarded}
        for url in urls.values():
            asyncio.run(load(url, 4, 5, 4))  # warm-up, untimed
        for i in range(args.rounds):  # alternate, so background load falls on both servers alike
            for guard, url in urls.items():
                rounds[guard].append(asyncio.run(load(url, args.clients, args.seconds, args.tokens)))
                print(f"round {i} guard={guard}: {rounds[guard][-1]['tok_s']:.1f} tok/s", flush=True)
        stats = httpx.get(f"{guarded}/v1/guard/stats").json()
    summary = {guard: summarise(runs) for guard, runs in rounds.items()}
    write(
        "guard_load",
        {
            "clients": args.clients,
            "seconds": args.seconds,
            "max_tokens": args.tokens,
            "rounds": args.rounds,
            "unguarded": summary["none"],
            "guarded": {**summary["default"], "guard_stats": stats},
            "guard_tok_s_cost": 1 - summary["default"]["tok_s"] / summary["none"]["tok_s"],
            "per_round": {"unguarded": rounds["none"], "guarded": rounds["default"]},
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
