"""The KV cache of a transformers forward pass, under either of its names.

transformers renamed the ``past_key_values`` argument and output field to ``cache``; code
that passes a cache in or reads one out goes through these two functions, so it runs on
both generations.
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwarg(model: Any) -> str:
    """The keyword ``model.forward`` takes its KV cache by: ``cache`` or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments passing ``cache`` to ``model.forward`` (none when ``cache`` is None)."""
    return {} if cache is None else {cache_kwarg(model): cache}


def returned_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
