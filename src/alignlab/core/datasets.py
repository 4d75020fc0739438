"""The datasets alignlab reads from its data folder: the registry, a layout check, and the missing-file error.

The registry is data (``datasets.yaml`` beside this module): each dataset's folder, source,
licence, use (training or evaluation only), the pillars that read it, and the files expected
with their record counts. :func:`check` validates a folder against it; :func:`dataset_file`
is the one way code opens a file in the data folder, so a missing file names its dataset and
where alignlab looked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from alignlab.core.datadir import DATA_ENV, data_root
from alignlab.errors import DataError, DataNotFoundError

REGISTRY = "datasets.yaml"


@dataclass(frozen=True)
class Dataset:
    """One dataset of the data folder.

    Args:
        name: its registry name, e.g. ``"coconot"``.
        folder: its folder under the data folder, e.g. ``"benign/mt_bench"``.
        title: what it is, in a line.
        pillars: the pillars that read it (``guard``, ``prefs``).
        use: ``training``, ``evaluation only`` or ``training and evaluation``.
        how: how alignlab uses it.
        source: the upstream repository (and commit) it comes from.
        licence: its licence.
        files: path under ``folder`` → expected record count.
    """

    name: str
    folder: str
    title: str
    pillars: tuple[str, ...]
    use: str
    how: str
    source: str
    licence: str
    files: dict[str, int]

    def paths(self, root: Path) -> Iterator[tuple[Path, int]]:
        """Each expected file under the data folder ``root``, with its record count."""
        for name, count in self.files.items():
            yield root / self.folder / name, count


@cache
def _registry() -> tuple[dict[str, str], dict[str, Dataset]]:
    import yaml

    raw: dict[str, Any] = yaml.safe_load(resources.files("alignlab.core").joinpath(REGISTRY).read_text())
    sets = {
        name: Dataset(name=name, **{**spec, "pillars": tuple(spec["pillars"])})
        for name, spec in raw["datasets"].items()
    }
    return dict(raw["pillars"]), sets


def datasets() -> dict[str, Dataset]:
    """Every dataset of the registry, by name, in the registry's order."""
    return _registry()[1]


def pillars() -> dict[str, str]:
    """What each pillar reads from the data folder, in a line each."""
    return _registry()[0]


def owner(relative: str) -> Dataset:
    """The dataset whose folder holds ``relative`` (a path under the data folder).

    Raises:
        KeyError: no dataset's folder holds it (a path the registry should list).
    """
    for dataset in datasets().values():
        if relative == dataset.folder or relative.startswith(dataset.folder + "/"):
            return dataset
    raise KeyError(f"{relative} is in no dataset of {REGISTRY}")


def root_origin(root: Path) -> str:
    """Where the data folder ``root`` was chosen: ``--data-dir``, ``$ALIGNLAB_DATA`` or the default."""
    env = os.environ.get(DATA_ENV)
    if env and Path(env) == root:
        return f"${DATA_ENV}"
    if not env and data_root() == root:
        return "the default, ../shared/data from the current folder"
    return "--data-dir"


def dataset_file(root: Path, relative: str) -> Path:
    """The file ``relative`` under the data folder ``root``; it must exist.

    Raises:
        DataNotFoundError: it does not; the message names the dataset, the folder looked in
            and how to point alignlab at another.
    """
    path = root / relative
    if not path.exists():
        raise DataNotFoundError(path, owner(relative).name, root, root_origin(root))
    return path


@dataclass(frozen=True)
class Problem:
    """What :func:`check` found wrong with one file."""

    dataset: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.dataset}: {self.path}: {self.reason}"


def check(root: Path, names: list[str] | None = None) -> list[Problem]:
    """Check the data folder ``root``: each expected file exists, parses and has its record count.

    Args:
        root: the data folder.
        names: the datasets to check (default: all).

    Returns:
        The problems found, one per file; empty when the folder is complete.
    """
    problems = []
    for dataset in datasets().values():
        if names is not None and dataset.name not in names:
            continue
        for path, expected in dataset.paths(root):
            reason = _check_file(path, expected)
            if reason:
                problems.append(Problem(dataset.name, path, reason))
    return problems


def _check_file(path: Path, expected: int) -> str:
    if not path.is_file():
        return "missing"
    try:
        found = count_records(path)
    except DataError as exc:
        return f"does not parse: {exc.reason}"
    return "" if found == expected else f"{found} records, expected {expected}"


def count_records(path: Path) -> int:
    """The records in a data file: JSON lines, a BIG-bench ``task.json``'s examples, or ``<row>`` elements.

    Raises:
        DataError: the file does not parse.
    """
    if path.name.endswith(".xml"):
        return _count_rows(path)
    if path.name.endswith(".json"):
        try:
            examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(path, None, f"not a BIG-bench task.json with 'examples': {exc}") from exc
        return len(examples)
    from alignlab.core.jsonl import read_jsonl

    return sum(1 for _ in read_jsonl(path))


def _count_rows(path: Path) -> int:
    import xml.etree.ElementTree as ET

    rows = 0
    try:
        for _, element in ET.iterparse(path):
            if element.tag == "row":
                rows += 1
            element.clear()
    except ET.ParseError as exc:
        raise DataError(path, exc.position[0], f"not well-formed XML: {exc}") from exc
    return rows


def present(dataset: Dataset, root: Path) -> bool:
    """Whether every file of ``dataset`` exists under ``root`` (a quick look; :func:`check` parses)."""
    return all(path.is_file() for path, _ in dataset.paths(root))
