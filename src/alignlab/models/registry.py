"""Spec string → backend, through a registry of lazy factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alignlab.core.registry import Registry
from alignlab.models.base import Backend

Factory = Callable[[str], Backend]
BACKENDS: Registry[Factory] = Registry("model backend")


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


BACKENDS.register("hf", _hf)
BACKENDS.register("openai", _openai)
BACKENDS.register("scripted", _scripted)
BACKENDS.register("smollm2", _smollm2)


def load(spec: str) -> Backend:
    """Build the backend for ``spec`` (see :mod:`alignlab.models` for the forms)."""
    kind, _, arg = spec.partition(":")
    if kind not in BACKENDS and (Path(spec).is_dir() or spec.endswith(".gguf")):
        kind, arg = "hf", spec
    return BACKENDS.get(kind)(arg)
