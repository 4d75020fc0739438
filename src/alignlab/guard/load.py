"""Find a trained guard and put it in front of a policy for serving.

``default`` is the guard shipped inside the package (trained by ``alignlab guard train
--recipe default`` for the embedded policy); a path names a guard folder of one's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

from alignlab.errors import ConfigError
from alignlab.guard.policy import GuardPolicy
from alignlab.guard.streaming import Session, StreamingGuard
from alignlab.models.base import Backend, ChatMessage


def packaged_guard() -> Path:
    return Path(str(resources.files("alignlab.guard") / "data" / "default_guard"))


def guard_folder(spec: str) -> Path:
    """The folder of a guard named ``default`` or given as a path.

    Raises:
        ConfigError: no trained guard there (the message says how to train one).
    """
    folder = packaged_guard() if spec == "default" else Path(spec)
    if not (folder / "guard.json").is_file():
        raise ConfigError(
            f"no trained guard at {folder}; train one with "
            f"`alignlab guard train --recipe default --out {folder}`"
        )
    return folder


def guard_policy_spec(folder: Path) -> str:
    return str(json.loads((folder / "guard.json").read_text())["policy"])


def load_guard(spec: str) -> Any:
    """A :class:`~alignlab.guard.cascade.Guard` named ``default`` or by folder, on its own policy.

    Raises:
        ConfigError: no guard there, or its policy is not a local model the guard can read.
    """
    from alignlab.guard.cascade import Guard
    from alignlab.guard.policy import load_policy

    folder = guard_folder(spec)
    return Guard(load_policy(guard_policy_spec(folder)), folder)


def serving_guard(
    spec: str,
    policy: Backend,
    *,
    hold_back: int = 4,
    log_text: bool = False,
    reader: Backend | None = None,
    prompt_window: int | None = None,
) -> StreamingGuard:
    """A :class:`~alignlab.guard.streaming.StreamingGuard` for ``policy``.

    A local hf policy that is the guard's own policy gets the probe cascade (stage 1 reads
    its activations during generation); any other backend, such as a remote upstream, gets
    the exchange classifier alone, run on a local copy of the guard's policy weights
    (``reader``, loaded from the guard's policy spec when not given).

    Raises:
        ConfigError: no guard there, or ``prompt_window`` disagrees with the window the guard
            was trained and calibrated with (its ``guard.json``).
    """
    from alignlab.guard.cascade import Guard
    from alignlab.guard.session import ClassifierSession, ProbeSession
    from alignlab.models import load_backend
    from alignlab.models.hf import HFBackend

    folder = guard_folder(spec)
    wanted = guard_policy_spec(folder)
    local = isinstance(policy, HFBackend) and policy.name == wanted
    guard = Guard(cast(GuardPolicy, policy if local else (reader or load_backend(wanted))), folder)
    if prompt_window is not None and prompt_window != guard.window.prompt_tokens:
        raise ConfigError(
            f"the guard at {folder} was calibrated on a {guard.window.prompt_tokens}-token prompt window; "
            f"serving it with {prompt_window} would score inputs unlike those its thresholds were set on "
            "(drop the option, or retrain the guard with that prompt_window)"
        )

    def new_session(messages: Sequence[ChatMessage]) -> Session:
        return ProbeSession(guard, messages) if local else ClassifierSession(guard, messages)

    def check(messages: Sequence[ChatMessage]) -> dict[str, Any]:
        response = ""
        if messages and messages[-1]["role"] == "assistant":
            messages, response = messages[:-1], messages[-1]["content"]
        return guard.check(messages, response).to_dict()

    return StreamingGuard(new_session, local, check, hold_back=hold_back, log_text=log_text)
