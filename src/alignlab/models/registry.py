"""Spec string → backend, through a registry of lazy factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alignlab.core.registry import Registry
from alignlab.models.base import Backend

Factory = Callable[[str], Backend]
BACKENDS: Registry[Factory] = Registry("model backend")
NEEDS = {"hf": "hf", "smollm2": "hf", "qwen2.5-coder-0.5b": "hf"}
"""The extra each backend kind needs beyond the base install."""


def _hf(arg: str) -> Backend:
    from alignlab.models.hf import HFBackend

    return HFBackend.load(arg)


def _openai(arg: str) -> Backend:
    from alignlab.models.openai import OpenAIBackend

    url, _, model = arg.partition("#")
    return OpenAIBackend(url, model or None)


def _scripted(arg: str) -> Backend:
    from alignlab.models.scripted import ScriptedBackend

    return ScriptedBackend(arg or None)


def _smollm2(arg: str) -> Backend:
    from alignlab.models import embedded
    from alignlab.models.hf import HFBackend

    return HFBackend.load(embedded.prepare(embedded.SMOLLM2), name="smollm2")


def _qwen_coder(arg: str) -> Backend:
    from alignlab.models import embedded
    from alignlab.models.hf import HFBackend

    return HFBackend.load(embedded.prepare(embedded.QWEN_CODER), name=embedded.QWEN_CODER.name)


BACKENDS.register("hf", _hf)
BACKENDS.register("openai", _openai)
BACKENDS.register("scripted", _scripted)
BACKENDS.register("smollm2", _smollm2)
BACKENDS.register("qwen2.5-coder-0.5b", _qwen_coder)


def _parse(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    if kind not in BACKENDS and (Path(spec).is_dir() or spec.endswith(".gguf")):
        kind, arg = "hf", spec
    return kind, arg


def extras_for(spec: str) -> tuple[str, ...]:
    """The extras the backend ``spec`` names needs (none for ``openai`` and ``scripted``)."""
    extra = NEEDS.get(_parse(spec)[0])
    return (extra,) if extra else ()


def load(spec: str) -> Backend:
    """Build the backend for ``spec`` (see :mod:`alignlab.models` for the forms).

    Raises:
        UnknownNameError: no backend kind of that name.
        DependencyError: the backend's extra is not installed (checked before any download or load).
    """
    from alignlab.core.extras import require

    kind, arg = _parse(spec)
    factory = BACKENDS.get(kind)
    require(*extras_for(spec), needed_for=f"the model {spec!r}")
    return factory(arg)
