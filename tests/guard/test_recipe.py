"""``guard train`` options are the recipe's fields; ``--recipe`` picks the file, options override it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from alignlab.errors import ConfigError
from alignlab.guard import cli
from alignlab.guard.recipe import Recipe, build_recipe, load_recipe


def test_train_help_lists_every_recipe_field() -> None:
    result = CliRunner().invoke(cli.app, ["train", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.stdout)
    for field in dataclasses.fields(Recipe):
        assert f"--{field.name.replace('_', '-')}" in text
    for extra in ("--recipe", "--data-dir", "--out"):
        assert extra in text


def test_build_recipe_overrides_only_the_fields_named() -> None:
    smoke = load_recipe("smoke")
    built = build_recipe("smoke", probe_epochs=smoke.probe_epochs + 2, train_families=("leetspeak",))
    assert built.probe_epochs == smoke.probe_epochs + 2 and built.train_families == ("leetspeak",)
    assert (
        dataclasses.replace(built, probe_epochs=smoke.probe_epochs, train_families=smoke.train_families)
        == smoke
    )
    assert build_recipe("smoke") == smoke


def test_build_recipe_refuses_an_unknown_or_ill_typed_override() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'probe_epochs'"):
        build_recipe("smoke", probe_epoch=3)
    with pytest.raises(ConfigError, match="prompt_window"):
        build_recipe("smoke", prompt_window="wide")


def test_train_uses_the_recipe_file_with_the_options_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    used: list[Recipe] = []

    def stop(recipe: Recipe, data_dir: Path | None) -> Any:
        used.append(recipe)
        raise typer.Exit(0)  # the recipe is all this test needs: no data, no training

    monkeypatch.setattr(cli, "_data", stop)
    monkeypatch.setattr(cli, "require", lambda *extras, needed_for: None)
    custom = tmp_path / "mine.yaml"
    custom.write_text("name: mine\nprobe_epochs: 7\nseed: 3\n")
    args = ["train", "--recipe", str(custom), "--seed", "0", "--held-out-families", "rot13_cipher"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    (recipe,) = used
    # --seed 0 equals the dataclass default, yet was given, so it wins over the file's 3.
    assert recipe == Recipe(name="mine", probe_epochs=7, seed=0, held_out_families=("rot13_cipher",))
    used.clear()
    assert CliRunner().invoke(cli.app, ["train", "--recipe", "smoke"]).exit_code == 0
    assert used == [load_recipe("smoke")]
