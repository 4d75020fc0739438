from __future__ import annotations

import io

import pytest
from rich.console import Console

from alignlab.core.progress import ENV_VAR, progress_bar, track


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, force_terminal=terminal, width=100), sink


def test_track_yields_every_item_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    target, _ = console(terminal=True)
    assert list(track(iter(range(5)), "counting", total=5, console=target)) == [0, 1, 2, 3, 4]


def test_bar_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    target, sink = console(terminal=True)
    assert list(track([1, 2, 3], "scoring", console=target)) == [1, 2, 3]
    assert "scoring" in sink.getvalue()
    assert "3/3" in sink.getvalue()


def test_bar_is_silent_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    target, sink = console(terminal=False)
    assert progress_bar(target).disable
    assert list(track([1, 2, 3], "scoring", console=target)) == [1, 2, 3]
    assert sink.getvalue() == ""


def test_env_forces_on_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    target, sink = console(terminal=False)
    list(track([1, 2], "forced", console=target))
    assert "2/2" in sink.getvalue()
    monkeypatch.setenv(ENV_VAR, "0")
    target, sink = console(terminal=True)
    assert progress_bar(target).disable
    list(track([1, 2], "off", console=target))
    assert sink.getvalue() == ""


def test_default_console_is_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    bar = progress_bar()
    assert bar.console.stderr
    assert not bar.disable
    assert bar.console.is_terminal


def test_columns_show_spinner_bar_count_and_times() -> None:
    names = [type(column).__name__ for column in progress_bar().columns]
    assert names == [
        "SpinnerColumn",
        "TextColumn",
        "BarColumn",
        "MofNCompleteColumn",
        "TimeElapsedColumn",
        "TimeRemainingColumn",
    ]
