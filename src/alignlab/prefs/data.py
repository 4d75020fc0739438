"""Preference data: rankings of responses to one context, from the formats the paper used.

A :class:`Ranking` is one context, two or more responses and a score per response
(higher is better, equal scores tie). A pair is a ranking of two. Loaders read:

* HH-RLHF (``{"chosen", "rejected"}`` transcripts, split at the last ``\\n\\nAssistant:``);
* BIG-bench ``hhh_alignment`` ``task.json`` files, pairs grouped back into per-prompt rankings;
* Stack Exchange ``Posts.xml`` dumps (in :mod:`alignlab.prefs.stackexchange`);
* generic JSON Lines: ``{"context", "chosen", "rejected"}`` pairs or
  ``{"context", "responses", "scores"}`` K-way rankings with ties.

Malformed records are never silently dropped: each is kept as a :class:`DataError` (file and
line) in the :class:`Loaded` result, whose :meth:`Loaded.summary` says how many were skipped.
Splits are deterministic, by a hash of each ranking's ``group`` (its first human turn), so
near-duplicate conversations stay on one side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from alignlab.core.datadir import data_root
from alignlab.core.registry import Registry
from alignlab.core.splits import SplitName, hash_split
from alignlab.errors import ConfigError, DataError

ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"


@dataclass(frozen=True)
class Ranking:
    """Responses to one context, each with a score (higher is better; equal scores tie).

    Attributes:
        context: the conversation so far, ending where the response begins.
        responses: two or more responses.
        scores: one score per response.
        group: the text a split hashes (the first human turn), so related items stay together.
        source: where the ranking came from, ``"file:line"``.
        subset: a category, e.g. the hhh subset ``"harmless"``.
    """

    context: str
    responses: tuple[str, ...]
    scores: tuple[float, ...]
    group: str = ""
    source: str = ""
    subset: str = ""

    def pairs(self) -> list[tuple[int, int]]:
        """Every ``(winner, loser)`` index pair with a strictly higher winner score; ties give none."""
        n = len(self.responses)
        return [(i, j) for i in range(n) for j in range(n) if self.scores[i] > self.scores[j]]

    def best(self) -> list[int]:
        """The indices of the top-scored responses (several where they tie)."""
        top = max(self.scores)
        return [i for i, s in enumerate(self.scores) if s == top]


def pair(context: str, chosen: str, rejected: str, **kwargs: str) -> Ranking:
    """A two-response ranking: ``chosen`` preferred to ``rejected``."""
    return Ranking(context, (chosen, rejected), (1.0, 0.0), **kwargs)


def check_ranking(ranking: Ranking, path: str | Path, line: int | None) -> Ranking:
    """Return ``ranking`` if it is usable for preference learning.

    Raises:
        DataError: fewer than two responses, a score count that does not match, an empty
            response, two identical responses, or all responses tied (nothing to learn).
    """
    if len(ranking.responses) < 2:
        raise DataError(path, line, "a ranking needs at least two responses")
    if len(ranking.scores) != len(ranking.responses):
        raise DataError(path, line, f"{len(ranking.responses)} responses but {len(ranking.scores)} scores")
    if any(not r.strip() for r in ranking.responses):
        raise DataError(path, line, "a response is empty")
    if len(set(ranking.responses)) < len(ranking.responses):
        raise DataError(path, line, "two responses are identical (e.g. chosen == rejected)")
    if not ranking.pairs():
        raise DataError(path, line, "all responses tie, so there is no preference to learn")
    return ranking


@dataclass
class Loaded:
    """Rankings read from a source, and the records skipped as malformed.

    Attributes:
        rankings: the usable rankings, in file order.
        problems: one :class:`DataError` (file and line) per skipped record.
        source: what was read.
    """

    rankings: list[Ranking] = field(default_factory=list)
    problems: list[DataError] = field(default_factory=list)
    source: str = ""

    def add(self, make: Callable[[], Ranking], path: str | Path, line: int | None) -> None:
        """Append ``make()`` checked, or record why it failed (a :class:`DataError`)."""
        try:
            self.rankings.append(check_ranking(make(), path, line))
        except DataError as exc:
            self.problems.append(exc)

    def summary(self, shown: int = 3) -> str:
        """One line: how many rankings were read, how many skipped, and the first few reasons."""
        text = f"{self.source}: {len(self.rankings)} rankings"
        if self.problems:
            first = "; ".join(str(p) for p in self.problems[:shown])
            more = "; ..." if len(self.problems) > shown else ""
            text += f", skipped {len(self.problems)} ({first}{more})"
        return text


# -- HH-RLHF ------------------------------------------------------------------------------


def split_transcript(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH transcripts into their shared context and the two final responses.

    The context runs up to and including the last ``\\n\\nAssistant:`` of each transcript.

    Raises:
        ValueError: a transcript has no ``Assistant:`` turn, or the two contexts differ.
    """
    cut_c, cut_r = chosen.rfind(ASSISTANT), rejected.rfind(ASSISTANT)
    if cut_c < 0 or cut_r < 0:
        raise ValueError("a transcript has no '\\n\\nAssistant:' turn")
    end_c, end_r = cut_c + len(ASSISTANT), cut_r + len(ASSISTANT)
    if chosen[:end_c] != rejected[:end_r]:
        raise ValueError("chosen and rejected do not share the context before the last Assistant turn")
    return chosen[:end_c], chosen[end_c:], rejected[end_r:]


def first_human_turn(context: str) -> str:
    """The first human turn of a transcript, whitespace-normalised (the split key)."""
    start = context.find(HUMAN)
    text = context[start + len(HUMAN) :] if start >= 0 else context
    end = text.find(ASSISTANT)
    return " ".join((text if end < 0 else text[:end]).split())


def load_hh(path: str | Path) -> Loaded:
    """Read an HH-RLHF file (``.jsonl`` or ``.jsonl.gz``) of ``{"chosen", "rejected"}`` transcripts.

    Raises:
        DataError: the file is missing or a line is not JSON (malformed records are skipped
            and listed in :attr:`Loaded.problems` instead).
    """
    from alignlab.core.jsonl import read_jsonl

    loaded = Loaded(source=str(path))
    for line, record in enumerate(read_jsonl(path), 1):
        loaded.add(partial(_hh_pair, record, path, line), path, line)
    return loaded


def _hh_pair(record: dict[str, Any], path: str | Path, line: int) -> Ranking:
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise DataError(path, line, "needs string fields 'chosen' and 'rejected'")
    try:
        context, good, bad = split_transcript(chosen, rejected)
    except ValueError as exc:
        raise DataError(path, line, str(exc)) from exc
    return pair(context, good, bad, group=first_human_turn(context), source=f"{path}:{line}")


# -- BIG-bench hhh_alignment --------------------------------------------------------------


def load_hhh(root: str | Path) -> Loaded:
    """Read the four ``hhh_alignment`` subsets (``root/SUBSET/task.json``) as per-prompt rankings.

    BIG-bench breaks each ranking of 2 to 4 responses into all its pairs; the pairs of one
    prompt are grouped back and each response scored by its number of wins, which
    reproduces the ranking whenever the pairs are consistent. Evaluation only.

    Raises:
        DataError: no subset file exists, or a file is not valid JSON of the expected shape.
    """
    root = Path(root)
    files = sorted(root.glob("*/task.json"))
    if not files:
        raise DataError(root, None, "no SUBSET/task.json files; expected the BIG-bench hhh_alignment folder")
    loaded = Loaded(source=str(root))
    for file in files:
        part = load_hhh_task(file, subset=file.parent.name)
        loaded.rankings += part.rankings
        loaded.problems += part.problems
    return loaded


def load_hhh_task(path: str | Path, subset: str = "") -> Loaded:
    """Read one BIG-bench ``task.json`` of ``{input, target_scores}`` pairs as per-prompt rankings.

    Raises:
        DataError: the file is missing, not JSON, or has no ``examples`` list.
    """
    path = Path(path)
    try:
        examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, None, f"not a BIG-bench task.json with 'examples': {exc}") from exc
    wins: dict[str, dict[str, int]] = {}
    loaded = Loaded(source=str(path))
    for index, example in enumerate(examples):
        scores = example.get("target_scores", {})
        good = [r for r, s in scores.items() if s == 1]
        if len(scores) != 2 or len(good) != 1:
            loaded.problems.append(
                DataError(path, None, f"example {index}: needs one response scored 1 of two")
            )
            continue
        tally = wins.setdefault(example["input"], {})
        for response in scores:
            tally[response] = tally.get(response, 0) + (response == good[0])
    for prompt, tally in wins.items():
        loaded.add(partial(_hhh_ranking, prompt, tally, path, subset), path, None)
    return loaded


def _hhh_ranking(prompt: str, wins: dict[str, int], path: Path, subset: str) -> Ranking:
    context = f"{HUMAN} {prompt}{ASSISTANT}"
    return Ranking(
        context,
        tuple(f" {r}" for r in wins),
        tuple(float(n) for n in wins.values()),
        group=first_human_turn(context),
        source=str(path),
        subset=subset,
    )


# -- generic JSON Lines -------------------------------------------------------------------


def load_jsonl(path: str | Path) -> Loaded:
    """Read preference pairs or K-way rankings from JSON Lines.

    Each line is ``{"context", "chosen", "rejected"}`` or ``{"context", "responses", "scores"}``
    (higher score is better; equal scores tie), with optional ``"group"`` and ``"subset"``.

    Raises:
        DataError: the file is missing or a line is not a JSON object.
    """
    from alignlab.core.jsonl import read_jsonl

    loaded = Loaded(source=str(path))
    for line, record in enumerate(read_jsonl(path), 1):
        loaded.add(partial(_jsonl_ranking, record, path, line), path, line)
    return loaded


def _jsonl_ranking(record: dict[str, Any], path: str | Path, line: int) -> Ranking:
    context = record.get("context", "")
    if not isinstance(context, str):
        raise DataError(path, line, "'context' must be a string")
    if "chosen" in record:
        responses, scores = [record.get("chosen"), record.get("rejected")], [1.0, 0.0]
    else:
        responses, scores = record.get("responses", []), record.get("scores", [])
    if not all(isinstance(r, str) for r in responses) or not all(
        isinstance(s, int | float) and not isinstance(s, bool) for s in scores
    ):
        raise DataError(
            path, line, "needs 'chosen'/'rejected' strings, or 'responses' strings with numeric 'scores'"
        )
    return Ranking(
        context,
        tuple(str(r) for r in responses),
        tuple(float(s) for s in scores),
        group=str(record.get("group") or first_human_turn(context)),
        source=f"{path}:{line}",
        subset=str(record.get("subset", "")),
    )


# -- splits -------------------------------------------------------------------------------


def split_of(group: str, test_fraction: float, salt: str = "alignlab-prefs") -> SplitName:
    """Which side of a deterministic split ``group`` falls on, by a SHA-256 hash.

    Raises:
        ConfigError: ``test_fraction`` is outside ``[0, 1]``.
    """
    return hash_split(f"{salt}\0{group}", test_fraction)


def split(rankings: Sequence[Ranking], name: SplitName, test_fraction: float = 0.2) -> list[Ranking]:
    """The rankings on one side of the :func:`split_of` split, in their original order."""
    return [r for r in rankings if split_of(r.group, test_fraction) == name]


def flatten_pairs(rankings: Sequence[Ranking]) -> Iterator[tuple[Ranking, int, int]]:
    """Every ``(ranking, winner, loser)`` of every ranking."""
    for ranking in rankings:
        for winner, loser in ranking.pairs():
            yield ranking, winner, loser


# -- named sources ------------------------------------------------------------------------


EVALUATION_ONLY = frozenset({"hhh"})
"""Sources never used for training: a number measured on tuned-on data is not a result."""


def load_source(spec: str, data_dir: str | Path | None = None) -> Loaded:
    """Load a named preference source.

    Specs: ``hh-harmless`` (HH-RLHF harmless-base under the data folder), ``hhh``
    (BIG-bench hhh_alignment, evaluation only), ``stackexchange`` (every ``*.Posts.xml``
    under ``stackexchange/``), or ``KIND:PATH`` with KIND one of ``hh``, ``hhh``,
    ``stackexchange`` and ``jsonl``.

    Raises:
        ConfigError: an unknown kind (with a suggestion).
        DataNotFoundError: a named source is not in the data folder (names the folder looked in).
        DataError: the files are missing or malformed.
    """
    from alignlab.core.datasets import dataset_file

    defaults = {
        "hh": "hh-rlhf/harmless-base-test.jsonl.gz",
        "hh-harmless": "hh-rlhf/harmless-base-test.jsonl.gz",
        "hhh": "hhh_alignment",
        "stackexchange": "stackexchange",
    }
    kind, _, where = spec.partition(":")
    loader = SOURCES.get(kind)
    if where:
        path = Path(where)
        if not path.exists():
            raise DataError(path, None, "no such file or folder")
        return loader(path)
    if kind not in defaults:
        raise ConfigError(f"data spec {spec!r} needs a path: {kind}:PATH")
    return loader(dataset_file(data_root(data_dir), defaults[kind]))


SOURCES: Registry[Callable[[Path], Loaded]] = Registry("preference data kind")
"""Loaders by spec kind; a lazy ``"module:attr"`` target imports nothing until used."""
SOURCES.register("hh", load_hh)
SOURCES.register("hh-harmless", load_hh)
SOURCES.register("hhh", load_hhh)
SOURCES.register("stackexchange", "alignlab.prefs.stackexchange:load_stackexchange_folder")
SOURCES.register("jsonl", load_jsonl)
