"""Stack Exchange ``Posts.xml`` dumps as rankings of answers, scored by the rule of Askell et al. (2021).

Each question with two or more answers becomes one ranking; an answer scores
``round(log2(1 + votes))``, ``-1`` when its votes are negative, plus one if it was accepted.
These rankings are for preference-model pre-training (PMP).
"""

from __future__ import annotations

import html
import math
import re
from functools import partial
from pathlib import Path

from alignlab.errors import DataError
from alignlab.prefs.data import ASSISTANT, HUMAN, Loaded, Ranking


def answer_score(votes: int, accepted: bool) -> int:
    """The paper's answer score: ``round(log2(1 + votes))``, ``-1`` for negative votes, ``+1`` if accepted."""
    base = -1 if votes < 0 else round(math.log2(1 + votes))
    return base + int(accepted)


def strip_html(text: str) -> str:
    """Post HTML as plain text: tags dropped, entities decoded, blank runs collapsed."""
    text = re.sub(r"<(br|/p|/li|/pre|/blockquote|/h\d)\s*/?>", "\n", text, flags=re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_stackexchange(path: str | Path) -> Loaded:
    """Read a Stack Exchange ``Posts.xml`` as rankings of the answers to each question.

    Each question with two or more answers becomes one ranking: context
    ``"\\n\\nHuman: TITLE\\n\\nBODY\\n\\nAssistant:"``, answers scored by :func:`answer_score`.

    Raises:
        DataError: the file is missing or not well-formed XML.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    questions: dict[str, dict[str, str]] = {}
    answers: dict[str, list[dict[str, str]]] = {}
    try:
        for _, row in ET.iterparse(path):
            if row.tag != "row":
                continue
            kind = row.get("PostTypeId")
            if kind == "1":
                questions[row.get("Id", "")] = dict(row.attrib)
            elif kind == "2":
                answers.setdefault(row.get("ParentId", ""), []).append(dict(row.attrib))
            row.clear()
    except (OSError, ET.ParseError) as exc:
        raise DataError(path, getattr(exc, "position", (None,))[0], f"cannot parse Posts.xml: {exc}") from exc
    loaded = Loaded(source=str(path))
    for qid, question in questions.items():
        replies = answers.get(qid, [])
        if len(replies) < 2:
            continue
        loaded.add(partial(_question_ranking, question, replies, path), path, None)
    return loaded


def _question_ranking(question: dict[str, str], replies: list[dict[str, str]], path: Path) -> Ranking:
    title = strip_html(question.get("Title", ""))
    context = f"{HUMAN} {title}\n\n{strip_html(question.get('Body', ''))}{ASSISTANT}"
    accepted = question.get("AcceptedAnswerId")
    return Ranking(
        context,
        tuple(f" {strip_html(a.get('Body', ''))}" for a in replies),
        tuple(float(answer_score(int(a.get("Score", "0")), a.get("Id") == accepted)) for a in replies),
        group=title,
        source=f"{path}#question-{question.get('Id')}",
        subset=path.name.split(".")[0],
    )


def load_stackexchange_folder(path: Path) -> Loaded:
    """Every ``*Posts.xml`` in a folder (or one file), as one :class:`Loaded`."""
    if path.is_file():
        return load_stackexchange(path)
    loaded = Loaded(source=str(path))
    for file in sorted(path.glob("*Posts.xml")):
        part = load_stackexchange(file)
        loaded.rankings += part.rankings
        loaded.problems += part.problems
    return loaded
