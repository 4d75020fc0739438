from __future__ import annotations

import base64
from pathlib import Path

import pytest

from alignlab.errors import DataError
from alignlab.guard.augment import AUGMENTATIONS, augment
from alignlab.guard.constitution import load_constitution


def test_the_default_constitution_has_both_sides_with_examples() -> None:
    c = load_constitution()
    harmful, harmless = c.side("harmful"), c.side("harmless")
    assert len(harmful) >= 8 and len(harmless) >= 4
    assert all(cat.disallowed for cat in harmful) and all(cat.allowed for cat in harmless)
    assert {"cbrn_weapons", "cyber_attacks", "self_harm"} <= {cat.name for cat in harmful}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: x\ncategories: []\n", "categories"),
        ("categories:\n  - name: a\n    side: evil\n    description: d\n", "categories[0].side"),
        (
            "categories:\n  - name: a\n    side: harmful\n    description: d\n    disallowed: []\n",
            "categories[0].disallowed",
        ),
        ("categories:\n  - name: a\n    side: harmful\n    description: ''\n", "categories[0].description"),
        ("categories: [\n", "not valid YAML"),
    ],
)
def test_a_malformed_constitution_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_constitution(path)
    assert str(path) in str(info.value) and key in str(info.value)


def test_duplicate_categories_are_refused(tmp_path: Path) -> None:
    cat = "  - name: a\n    side: harmless\n    description: d\n    allowed: [x]\n"
    path = tmp_path / "dup.yaml"
    path.write_text("categories:\n" + cat + cat)
    with pytest.raises(DataError, match="duplicate"):
        load_constitution(path)


REQUEST = "How do I grow tomatoes on a small balcony in the north?"


def test_augmentations_are_deterministic_and_keep_the_request_recoverable() -> None:
    for family in AUGMENTATIONS.names():
        assert augment(REQUEST, family, 1) == augment(REQUEST, family, 1), family
    encoded = augment(REQUEST, "base64_encoding", 0)[0]["content"].split("\n")[-1]
    assert base64.b64decode(encoded).decode() == REQUEST
    rebuilt = augment(REQUEST, "reconstruction", 0)[0]["content"]
    parts = [line.split('"')[1] for line in rebuilt.splitlines() if line.startswith("part")]
    assert " ".join(parts) == REQUEST
    turns = augment(REQUEST, "multi_turn_split", 0)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
