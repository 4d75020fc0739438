"""One vocabulary across pillars: output paths are ``--out``; old names are hidden, and warn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from alignlab import cli

OLD_OUTPUT_FLAGS = {"--output", "--output-dir", "--out-dir", "--outdir"}


def commands(group: Any, path: str = "alignlab") -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        if command.hidden:
            continue
        if hasattr(command, "commands"):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def visible_flags(command: Any) -> set[str]:
    return {flag for param in command.params if not getattr(param, "hidden", False) for flag in param.opts}


def root() -> Any:
    cli._mount_pillars()
    return typer.main.get_command(cli.app)


def test_no_visible_command_spells_an_output_path_other_than_out() -> None:
    found = dict(commands(root()))
    assert {"alignlab guard eval", "alignlab prefs eval", "alignlab code eval"} <= set(found)
    wrong = {name: visible_flags(c) & OLD_OUTPUT_FLAGS for name, c in found.items()}
    assert {name: flags for name, flags in wrong.items() if flags} == {}


@pytest.mark.parametrize("pillar", ["guard", "prefs", "code"])
def test_every_pillars_eval_takes_out(pillar: str) -> None:
    (command,) = (c for name, c in commands(root()) if name == f"alignlab {pillar} eval")
    assert "--out" in visible_flags(command)


def test_commands_renamed_to_out_still_accept_their_old_spelling() -> None:
    hidden = {
        name: {f for p in c.params if getattr(p, "hidden", False) for f in p.opts}
        for name, c in commands(root())
    }
    for name in (
        "alignlab generate",
        "alignlab prefs eval",
        "alignlab prefs train",
        "alignlab prefs pmp",
        "alignlab prefs distill",
    ):
        assert "--output" in hidden[name], name


def test_code_has_one_name_for_eval() -> None:
    names = [name for name, _ in commands(root()) if name.startswith("alignlab code ")]
    assert "alignlab code eval" in names and "alignlab code evaluate" not in names
    # The old name stays for one release, hidden from --help.
    assert root().commands["code"].commands["evaluate"].hidden
