"""``alignlab guard check --input``: screen a JSONL file of conversations, one verdict per line.

Each input line is ``{"messages": [...]}`` (optionally ``"response"`` and ``"id"``). Every
conversation is scored under the guard's prompt window, so length alone never fails an item;
a malformed line gets an error record naming its line, and the run goes on. Verdicts are
appended to the output as they are made, so a rerun resumes where the last one stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignlab.core.jsonl import parse_line
from alignlab.core.results import ResultsFile
from alignlab.errors import AlignlabError, DataError


def _conversation(record: dict[str, Any], path: Path, line: int) -> tuple[list[Any], str]:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(path, line, "expected a non-empty 'messages' list")
    for m in messages:
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise DataError(path, line, "each message needs a string 'role' and 'content'")
    response = record.get("response") or ""
    if not isinstance(response, str):
        raise DataError(path, line, "'response' must be a string")
    return [{"role": m["role"], "content": m["content"]} for m in messages], response


def check_file(guard: Any, path: Path, out: Path) -> dict[str, int]:
    """Append a verdict (or an error record) for every line of ``path`` not yet in ``out``.

    Returns:
        Counts of this run: ``checked``, ``errors``, ``skipped`` (done by an earlier run), ``flagged``.
    """
    from alignlab.core.progress import progress_bar

    results = ResultsFile(out, "line")
    lines = path.read_bytes().splitlines()
    counts = {"checked": 0, "errors": 0, "skipped": 0, "flagged": 0}
    with progress_bar() as bar:
        task = bar.add_task(f"screening {path.name}", total=len(lines))
        for number, raw in enumerate(lines, start=1):
            bar.advance(task)
            if not raw.strip():
                continue
            if str(number) in results:
                counts["skipped"] += 1
                continue
            record: dict[str, Any] = {"line": str(number)}
            try:
                item = parse_line(raw, path, number)
                record["id"] = item.get("id")
                messages, response = _conversation(item, path, number)
                verdict = guard.check(messages, response).to_dict()
                record.update(verdict)
                counts["flagged"] += bool(verdict["flagged"])
                counts["checked"] += 1
            except AlignlabError as exc:  # one bad item costs one item
                record["error"] = str(exc)
                counts["errors"] += 1
            results.append(record)
    return counts
