"""The OpenAI-compatible server under 16 concurrent chats, beside the same work done in-process.

Starts ``alignlab serve --model smollm2 --guard none`` on 127.0.0.1 in a subprocess, sends 16 concurrent
chat requests (streaming and not) a few rounds each, and reports p50/p95 latency, time to
first token and total tokens/s; then runs the same 16 chats in-process as one batch.

    python benchmarks/serve.py [--rounds 3] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx
from common import median, percentile, served, write
from models import chats


async def one(http: httpx.AsyncClient, chat: Any, tokens: int, stream: bool) -> tuple[float, float, int]:
    """(latency, time to first token, completion tokens) of one request."""
    body = {
        "messages": chat,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }
    start = time.perf_counter()
    if not stream:
        data = (await http.post("/v1/chat/completions", json=body)).raise_for_status().json()
        took = time.perf_counter() - start
        return took, took, int(data["usage"]["completion_tokens"])
    first, produced = 0.0, 0
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                produced = int(chunk["usage"]["completion_tokens"])
            elif not first and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - start
    return time.perf_counter() - start, first, produced


async def rounds(url: str, n: int, tokens: int, stream: bool, repeats: int) -> dict[str, float]:
    latencies, firsts, rates = [], [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for _ in range(repeats):
            start = time.perf_counter()
            results = await asyncio.gather(*(one(http, c, tokens, stream) for c in chats(n)))
            wall = time.perf_counter() - start
            latencies += [r[0] for r in results]
            firsts += [r[1] for r in results]
            rates.append(sum(r[2] for r in results) / wall)
    return {
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "ttft_p50_s": percentile(firsts, 50),
        "tok_s": median(rates),
    }


def in_process(n: int, tokens: int, repeats: int) -> dict[str, float]:
    from alignlab.models import load_backend
    from alignlab.models.base import SamplingParams

    backend = load_backend("smollm2")
    backend.generate(chats(n), SamplingParams(max_new_tokens=4))  # warm-up, untimed
    rates, walls = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        gens = backend.generate(chats(n), SamplingParams(max_new_tokens=tokens))
        walls.append(time.perf_counter() - start)
        rates.append(sum(len(g.tokens) for g in gens) / walls[-1])
    return {"wall_s": median(walls), "tok_s": median(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with served("--model", "smollm2", "--guard", "none") as url:
        asyncio.run(rounds(url, args.clients, 4, False, 1))  # warm-up, untimed
        plain = asyncio.run(rounds(url, args.clients, args.tokens, False, args.rounds))
        streamed = asyncio.run(rounds(url, args.clients, args.tokens, True, args.rounds))
    local = in_process(args.clients, args.tokens, args.rounds)
    write(
        "serve",
        {
            "clients": args.clients,
            "max_tokens": args.tokens,
            "rounds": args.rounds,
            "server": plain,
            "server_stream": streamed,
            "in_process": local,
            "server_vs_in_process_tok_s": plain["tok_s"] / local["tok_s"],
            "stream_vs_in_process_tok_s": streamed["tok_s"] / local["tok_s"],
        },
    )


if __name__ == "__main__":
    main()
