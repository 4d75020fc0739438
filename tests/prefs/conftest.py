"""Fixtures of the prefs tests: synthetic preference data, a tiny preference model, the shared data."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alignlab.prefs.data import Ranking, data_root, pair

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "hello",
    "world",
    "paris",
    "capital",
    "france",
]


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy two-core machine two threads
    spin-wait on each other (a 1 s test took 30 s); the setting is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder, or a skip saying where it was looked for."""
    root = data_root()
    if not (root / "hh-rlhf").is_dir() or not (root / "hhh_alignment").is_dir():
        pytest.skip(f"shared data not found at {root.resolve()}; set $ALIGNLAB_DATA to run these tests")
    return root


def synthetic_pairs(n: int = 40, seed: int = 0) -> list[Ranking]:
    """Pairs a tiny model can learn: the preferred response is always the same sentence."""
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        context = "\n\nHuman: " + " ".join(rng.choice(WORDS) for _ in range(6)) + "\n\nAssistant:"
        other = " " + " ".join(rng.choice(WORDS) for _ in range(3))
        data.append(pair(context, " paris is the capital.", other, group=context))
    return data


@pytest.fixture
def pairs() -> list[Ranking]:
    return synthetic_pairs()


@pytest.fixture
def mixed() -> list[Ranking]:
    """Rankings of different shapes: a pair, a 3-way ranking with a tie, an empty context."""
    return [
        pair("\n\nHuman: hello world\n\nAssistant:", " the quick brown fox", " paris"),
        Ranking(
            "\n\nHuman: what is the capital of france? tell me more words here\n\nAssistant:",
            (" paris is the capital.", " def add", " hello"),
            (2.0, 1.0, 1.0),
        ),
        pair("", " the lazy dog jumps", " x"),
    ]


@pytest.fixture
def make_pm(tiny_model_dir: Path) -> Any:
    """A factory of fresh tiny preference models (seeded head)."""

    def make(**kwargs: Any) -> Any:
        import torch

        from alignlab.prefs.model import ModelConfig, PreferenceModel

        torch.manual_seed(0)
        config = ModelConfig(model=str(tiny_model_dir), max_tokens=kwargs.pop("max_tokens", 64))
        return PreferenceModel.build(config, **kwargs)

    return make
