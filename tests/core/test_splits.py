"""Hash splits: one implementation, and every pillar's split lands where it always did."""

from __future__ import annotations

import hashlib

import pytest

from alignlab.core.splits import hash64, hash_split, unit_hash
from alignlab.errors import ConfigError
from alignlab.guard.dataset import split_of as guard_split
from alignlab.guard.seeds import half
from alignlab.prefs.data import split_of as prefs_split

TEXTS = [f"request number {i}" for i in range(300)]


def sha_fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def test_unit_hash_is_the_sha256_prefix_in_the_unit_interval() -> None:
    values = [unit_hash(t) for t in TEXTS]
    assert values == [sha_fraction(t) for t in TEXTS]
    assert all(0.0 <= v < 1.0 for v in values)
    assert hash64("x") == int(hashlib.sha256(b"x").hexdigest()[:16], 16)


def test_hash_split_takes_about_the_share_asked_and_checks_it() -> None:
    test = [t for t in TEXTS if hash_split(t, 0.2) == "test"]
    assert 30 < len(test) < 95
    assert all(hash_split(t, 0.0) == "train" for t in TEXTS)
    assert all(hash_split(t, 1.0) == "test" for t in TEXTS)
    with pytest.raises(ConfigError, match="test_fraction"):
        hash_split("x", -0.1)


def test_each_pillars_split_is_the_one_its_data_was_made_with() -> None:
    # The formulas each pillar used before the split had one home: no example may move.
    for text in TEXTS:
        old_guard = "test" if sha_fraction(f"split:{text}") < 0.3 else "train"
        old_prefs = "test" if sha_fraction(f"alignlab-prefs\0{text}") < 0.3 else "train"
        old_half = hashlib.sha256(f"mitre_frr:{text}".encode()).digest()[0] & 1
        assert guard_split(text, 0.3) == old_guard
        assert prefs_split(text, 0.3) == old_prefs
        assert half(text, "mitre_frr") == old_half
    assert {half(t, "mitre_frr") for t in TEXTS} == {0, 1}
