"""Progress bars on stderr that stay out of logs and pipes.

A bar shows only when stderr is a terminal, so redirected output holds no control codes.
``ALIGNLAB_PROGRESS=1`` forces bars on (say, under a CI log viewer that renders them);
``ALIGNLAB_PROGRESS=0`` turns them off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

ENV_VAR = "ALIGNLAB_PROGRESS"
_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def forced() -> bool | None:
    """What ``ALIGNLAB_PROGRESS`` asks for: True (force on), False (off) or None (decide by terminal)."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return None


def progress_bar(console: Console | None = None) -> Progress:
    """A progress display with spinner, description, bar, M/N, elapsed and remaining time.

    Use it as a context manager and add tasks to it. It draws on ``console`` (by default
    stderr) and is disabled when that is not a terminal, unless ``ALIGNLAB_PROGRESS``
    says otherwise.

    Args:
        console: where to draw; by default a new stderr console.
    """
    force = forced()
    if console is None:
        # Forcing must also make rich animate, which it only does for a terminal.
        console = Console(stderr=True, force_terminal=True if force else None)
    enabled = console.is_terminal if force is None else force
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def track(
    iterable: Iterable[T],
    description: str,
    total: float | None = None,
    *,
    console: Console | None = None,
) -> Iterator[T]:
    """Yield the items of ``iterable`` while showing a progress bar (see :func:`progress_bar`).

    Args:
        iterable: the items.
        description: what is being done, shown left of the bar.
        total: how many items; by default ``len(iterable)`` where it has one.
        console: where to draw; by default stderr.
    """
    with progress_bar(console) as progress:
        yield from progress.track(iterable, total=total, description=description)
