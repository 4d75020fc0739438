"""The extras table matches pyproject.toml, and a missing module is reported with the extra to install."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from alignlab.core.extras import EXTRAS, extra_of_module, packages, require
from alignlab.errors import DependencyError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _declared() -> dict[str, tuple[set[str], set[str]]]:
    """Each extra of pyproject.toml as (its distributions, the alignlab extras it includes)."""
    table = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    out = {}
    for name, requirements in table.items():
        dists, includes = set(), set()
        for requirement in requirements:
            bare = re.split(r"[<>=!~ ;]", requirement, maxsplit=1)[0]
            if bare.startswith("alignlab["):
                includes |= set(bare.removeprefix("alignlab[").removesuffix("]").split(","))
            else:
                dists.add(bare)
        out[name] = (dists, includes)
    return out


def test_the_table_mirrors_pyproject() -> None:
    declared = _declared()
    assert set(EXTRAS) == set(declared) - {"dev"}
    for name, extra in EXTRAS.items():
        assert (set(extra.packages), set(extra.includes)) == declared[name], name


def test_packages_follow_included_extras() -> None:
    assert packages("guard")[:7] == [
        "torch",
        "transformers",
        "accelerate",
        "safetensors",
        "gguf",
        "fastapi",
        "uvicorn",
    ]
    assert len(packages("all")) == len(set(packages("all")))


def test_a_missing_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(DependencyError) as caught:
        require("hf", needed_for="alignlab generate")
    message = str(caught.value)
    assert caught.value.package == "transformers" and caught.value.extra == "hf"
    assert message == (
        "'transformers' is not installed (needed for alignlab generate); "
        "install it with: pip install 'alignlab[hf]'"
    )


def test_the_hint_names_the_extra_that_covers_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(DependencyError, match=r"alignlab\[guard\]'$"):
        require("serve", "hf", "guard")
    with pytest.raises(DependencyError, match=r"alignlab\[serve,hf\]'$"):
        require("serve", "hf")


def test_nothing_is_raised_when_installed() -> None:
    require("guard", "prefs", "code")  # the test environment has every extra


def test_extra_of_module() -> None:
    assert extra_of_module("transformers.models") == "hf"
    assert extra_of_module("sklearn.metrics") == "guard"
    assert extra_of_module("distributed") == "code"
    assert extra_of_module("numpy") is None and extra_of_module(None) is None
