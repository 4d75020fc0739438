"""The one padding and KV-cache helpers every batching path shares."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from alignlab.models.kvcache import cache_argument, cache_kwarg, returned_cache
from alignlab.models.padding import pad


def test_right_padding_keeps_tokens_first_and_masks_the_rest() -> None:
    ids, mask = pad([[1, 2, 3], [4], []], pad_id=9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9], [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]


def test_left_padding_ends_every_row_at_the_last_column() -> None:
    ids, mask = pad([[1, 2, 3], [4]], pad_id=0, side="left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_no_rows_pad_to_an_empty_batch() -> None:
    ids, mask = pad([], pad_id=0)
    assert tuple(ids.shape) == (0, 0) and tuple(mask.shape) == (0, 0)


def test_the_cache_keyword_follows_the_models_signature() -> None:
    class New:
        def forward(self, input_ids: Any = None, cache: Any = None) -> None: ...

    class Old:
        def forward(self, input_ids: Any = None, past_key_values: Any = None) -> None: ...

    assert cache_kwarg(New()) == "cache" and cache_kwarg(Old()) == "past_key_values"
    assert cache_argument(Old(), "kv") == {"past_key_values": "kv"} and cache_argument(New(), None) == {}
    assert returned_cache(SimpleNamespace(cache="new", past_key_values="old")) == "new"
    assert returned_cache(SimpleNamespace(past_key_values="old")) == "old"
