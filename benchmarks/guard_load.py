"""Load on the guarded assistant: concurrent streaming clients, guarded and unguarded, in one run.

Starts ``alignlab serve --model smollm2`` twice on 127.0.0.1 — with ``--guard none`` and with
``--guard default`` — and runs the same bounded load against each: ``--clients`` streaming
clients for ``--seconds`` seconds, each sending benign chat requests one after another.
Reports errors, p50/p95/p99 latency, time to first token and tokens/s, and the guard's cost
in tokens/s.

    python benchmarks/guard_load.py [--clients 32] [--seconds 60] [--tokens 32]
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


def serve(guard: str, args: argparse.Namespace) -> dict[str, Any]:
    with served("--model", "smollm2", "--guard", guard) as url:
        asyncio.run(load(url, 4, 5, 4))  # warm-up, untimed
        result = asyncio.run(load(url, args.clients, args.seconds, args.tokens))
        if guard != "none":
            result["guard_stats"] = httpx.get(f"{url}/v1/guard/stats").json()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    unguarded = serve("none", args)
    guarded = serve("default", args)
    write(
        "guard_load",
        {
            "clients": args.clients,
            "seconds": args.seconds,
            "max_tokens": args.tokens,
            "unguarded": unguarded,
            "guarded": guarded,
            "guard_tok_s_cost": 1 - guarded["tok_s"] / unguarded["tok_s"],
        },
    )


if __name__ == "__main__":
    main()
