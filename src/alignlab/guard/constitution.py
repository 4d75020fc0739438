"""The constitution: natural-language harmful and harmless categories, the one editable policy artefact.

A constitution is a YAML file (see ``guard/data/constitution.yaml``): each category has a
name, a side (``harmful`` or ``harmless``), a description and examples — ``disallowed``
requests for a harmful category, ``allowed`` neighbours that share its topic and must stay
answerable. Training data is generated from it, so editing it and retraining changes the guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from alignlab.errors import DataError, DependencyError

Side = Literal["harmful", "harmless"]


@dataclass(frozen=True)
class Category:
    """One constitution category."""

    name: str
    side: Side
    description: str
    disallowed: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Constitution:
    """A named set of categories."""

    name: str
    categories: tuple[Category, ...]
    version: int = 1
    source: str = field(default="", compare=False)

    def side(self, side: Side) -> list[Category]:
        return [c for c in self.categories if c.side == side]

    def category(self, name: str) -> Category:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(name)


def default_path() -> Path:
    """The shipped default constitution."""
    return Path(str(resources.files("alignlab.guard") / "data" / "constitution.yaml"))


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Read and check a constitution file (the shipped default when ``path`` is None).

    Raises:
        DataError: the file is missing, not YAML, or a key is missing, of the wrong type or
            empty; the message names the file and the key (e.g. ``categories[3].disallowed``).
    """
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a base dependency
        raise DependencyError("yaml", "all") from exc
    source = Path(path) if path is not None else default_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(source, None, f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(source, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from exc
    return _parse(raw, source)


def _parse(raw: Any, source: Path) -> Constitution:
    def fail(key: str, problem: str) -> DataError:
        return DataError(source, None, f"{key}: {problem}")

    if not isinstance(raw, dict):
        raise fail("(top level)", "expected a mapping with 'name' and 'categories'")
    cats = raw.get("categories")
    if not isinstance(cats, list) or not cats:
        raise fail("categories", "expected a non-empty list of categories")
    categories, seen = [], set()
    for i, cat in enumerate(cats):
        key = f"categories[{i}]"
        if not isinstance(cat, dict):
            raise fail(key, "expected a mapping")
        name = _text(cat, "name", key, fail)
        if name in seen:
            raise fail(f"{key}.name", f"duplicate category {name!r}")
        seen.add(name)
        side = cat.get("side")
        if side not in ("harmful", "harmless"):
            raise fail(f"{key}.side", f"expected 'harmful' or 'harmless', got {side!r}")
        description = _text(cat, "description", key, fail)
        examples = {k: _examples(cat, k, key, fail) for k in ("disallowed", "allowed")}
        wanted = "disallowed" if side == "harmful" else "allowed"
        if not examples[wanted]:
            raise fail(f"{key}.{wanted}", f"a {side} category needs at least one {wanted} example")
        categories.append(Category(name, side, description, examples["disallowed"], examples["allowed"]))
    if not any(c.side == "harmful" for c in categories) or not any(c.side == "harmless" for c in categories):
        raise fail("categories", "needs at least one harmful and one harmless category")
    name = raw.get("name", source.stem)
    return Constitution(str(name), tuple(categories), int(raw.get("version", 1)), str(source))


def _text(cat: dict[str, Any], key: str, where: str, fail: Any) -> str:
    value = cat.get(key)
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{where}.{key}", "expected a non-empty string")
    return value.strip()


def _examples(cat: dict[str, Any], key: str, where: str, fail: Any) -> tuple[str, ...]:
    value = cat.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(f"{where}.{key}", "expected a list of non-empty strings")
    return tuple(v.strip() for v in value)
