"""Deterministic splits by a hash: the same key lands on the same side on every run and machine.

Every pillar splits through these functions; each decides what its key is (the guard a
salted request text, prefs a salted conversation group), so changing one pillar's key
never moves another's data.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from alignlab.errors import ConfigError

SplitName = Literal["train", "test"]


def hash64(key: str) -> int:
    """The first 8 bytes of the SHA-256 of ``key``, as a big-endian integer."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def unit_hash(key: str) -> float:
    """A stable number in ``[0, 1)`` from ``key``: :func:`hash64` scaled down."""
    return hash64(key) / 2**64


def hash_split(key: str, test_fraction: float) -> SplitName:
    """``"test"`` for a share ``test_fraction`` of keys, by :func:`unit_hash`; else ``"train"``.

    Raises:
        ConfigError: ``test_fraction`` is outside ``[0, 1]``.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ConfigError(f"test_fraction must be within [0, 1], got {test_fraction}")
    return "test" if unit_hash(key) < test_fraction else "train"
