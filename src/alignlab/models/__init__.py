"""The model layer: backends behind one interface, chosen by a spec string.

Specs:
    ``smollm2``               the embedded SmolLM2-135M-Instruct (prepared offline on first use)
    ``qwen2.5-coder-0.5b``    the embedded Qwen2.5-Coder-0.5B-Instruct (likewise; 491 MB in six wheels)
    ``hf:PATH``               a transformers model directory, a ``.gguf`` file, or a hub id
    ``openai:URL[#MODEL]``    an OpenAI-compatible endpoint, e.g. ``openai:http://127.0.0.1:8000/v1``
    ``scripted[:REPLY]``      a deterministic stand-in (echoes the last user turn without REPLY)

A bare path to a model directory or ``.gguf`` file works as ``hf:PATH``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alignlab.models.base import Backend

__all__ = ["known_specs", "load_backend"]


def load_backend(spec: str) -> Backend:
    """Build the backend a spec string names.

    Raises:
        UnknownNameError: the spec names no known backend (the error lists them and suggests one).
        ModelNotFoundError: the weights are not where the spec says.
    """
    from alignlab.models.registry import load

    return load(spec)


def known_specs() -> list[str]:
    """The backend kinds and embedded model names a spec may start with."""
    from alignlab.models.registry import BACKENDS

    return BACKENDS.names()
