"""The embedded model: load times, generation and forward throughput, ours beside plain transformers.

Measures, in one run on this machine: first load (dequantising the GGUF into a fresh cache),
cached load, greedy tokens/s for one chat, batched tokens/s for 16 chats, and forward
tokens/s with all-layer hidden states. The anchor is transformers' own ``generate`` and a
plain forward pass on the same weights, so the ratios show what alignlab's decode loop costs.

    python benchmarks/models.py [--repeats 3] [--tokens 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from common import median, write


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return median(times), result


def load_times(repeats: int) -> dict[str, float]:
    from alignlab.models import embedded
    from alignlab.models.hf import HFBackend

    gguf = embedded._find_gguf(embedded.SMOLLM2)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ALIGNLAB_CACHE"] = cache
        os.environ["ALIGNLAB_SMOLLM2_GGUF"] = str(gguf)
        start = time.perf_counter()
        HFBackend.load(embedded.prepare(), name="smollm2")
        first = time.perf_counter() - start
        cached, _ = timed(lambda: HFBackend.load(embedded.prepare(), name="smollm2"), repeats)
    del os.environ["ALIGNLAB_CACHE"], os.environ["ALIGNLAB_SMOLLM2_GGUF"]
    return {"first_load_s": first, "cached_load_s": cached}


def chats(n: int) -> list[Any]:
    topics = [
        "rivers",
        "bread",
        "chess",
        "volcanoes",
        "jazz",
        "bees",
        "glass",
        "maps",
        "tides",
        "paper",
        "clocks",
        "salt",
        "kites",
        "moss",
        "iron",
        "owls",
    ]
    return [
        [{"role": "user", "content": f"Write a short paragraph about {topics[i % 16]}."}] for i in range(n)
    ]


def anchor_generate(backend: Any, prompts: list[Any], tokens: int) -> int:
    """transformers' generate on the same weights, greedy, left-padded batch; returns new tokens."""
    import torch

    tok = backend.tokenizer
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = backend.model.generate(
            **batch,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=backend.pad_id,
        )
    return int(out.shape[0] * (out.shape[1] - batch["input_ids"].shape[1]))


def throughput(backend: Any, repeats: int, tokens: int) -> dict[str, float]:
    import torch

    from alignlab.models.base import SamplingParams

    # The same number of tokens on both sides: end-of-sequence is masked out for the timing.
    eos = backend.eos_ids
    backend.eos_ids = set()
    params = SamplingParams(max_new_tokens=tokens)
    backend.generate(chats(16), SamplingParams(max_new_tokens=4))  # warm-up, untimed
    result: dict[str, float] = {}
    for label, n in [("greedy", 1), ("batched_x16", 16)]:
        prompts = chats(n)
        ours, gens = timed(lambda p=prompts: backend.generate(p, params), repeats)
        theirs, count = timed(lambda p=prompts: anchor_generate(backend, p, tokens), repeats)
        produced = sum(len(g.tokens) for g in gens)
        result[f"{label}_tok_s"] = produced / ours
        result[f"{label}_anchor_tok_s"] = count / theirs
        result[f"{label}_ratio"] = (produced / ours) / (count / theirs)
    backend.eos_ids = eos
    texts = [" ".join(["the quick brown fox jumps over the lazy dog"] * 14)] * 16
    n_tokens = sum(backend.count_tokens(t) for t in texts)
    ours, _ = timed(lambda: backend.hidden_states(texts), repeats)
    ids = torch.tensor([backend.encode(t) for t in texts])

    def plain() -> Any:
        with torch.inference_mode():
            return backend.model(input_ids=ids, output_hidden_states=True)

    theirs, _ = timed(plain, repeats)
    result.update(
        forward_tok_s=n_tokens / ours,
        forward_anchor_tok_s=n_tokens / theirs,
        forward_ratio=(n_tokens / ours) / (n_tokens / theirs),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from alignlab.models import load_backend

    loads = load_times(args.repeats)
    backend = load_backend("smollm2")
    write(
        "models",
        {
            "repeats": args.repeats,
            "new_tokens": args.tokens,
            "model": "smollm2",
            **loads,
            **throughput(backend, args.repeats, args.tokens),
        },
    )


if __name__ == "__main__":
    main()
