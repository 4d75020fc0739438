"""Incremental detokenisation with stop strings, for streaming.

Text is released only when it is final: not the start of a multi-byte character still
being spelled out by byte tokens, and not a possible beginning of a stop string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class TextStream:
    """Turns a growing list of token ids into released text deltas.

    Args:
        decode: token ids → text (special tokens skipped).
        stop: strings that end the text; they are never released.
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.released = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one token; return the text it releases (possibly empty)."""
        self.ids.append(token_id)
        text = self._decode(self.ids)
        for s in self._stop:
            cut = text.find(s, max(0, len(self.released) - len(s)))
            if cut >= 0:
                self.stopped = True
                return self._release(text[:cut])
        if text.endswith("\ufffd"):  # a character whose bytes are not all here yet
            return ""
        return self._release(text[: len(text) - self._pending_stop_prefix(text)])

    def flush(self) -> str:
        """Release whatever is held back at the end of the stream."""
        if self.stopped:
            return ""
        return self._release(self._decode(self.ids).rstrip("\ufffd"))

    def _release(self, upto: str) -> str:
        if len(upto) <= len(self.released):
            return ""
        delta = upto[len(self.released) :]
        self.released = upto
        return delta

    def _pending_stop_prefix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that could still grow into a stop string."""
        longest = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest
