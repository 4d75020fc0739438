"""On an install without an extra, commands that need it say which in one line and exit 2.

The modules are hidden in a fresh interpreter (``sys.modules[name] = None``), so this runs in
the full test environment; ``.ci/base-install`` checks the same on a real base install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HIDE = "import sys\nfor name in {hidden!r}: sys.modules[name] = None\nsys.argv = {argv!r}\n"
RUN = "from alignlab.cli import main\nmain()\n"


def run_without(hidden: list[str], args: list[str], cache: Path) -> tuple[int, str]:
    """Run ``alignlab ARGS`` with the ``hidden`` modules unimportable; the exit code and output."""
    code = HIDE.format(hidden=hidden, argv=["alignlab", *args]) + RUN
    env = {**os.environ, "ALIGNLAB_CACHE": str(cache), "PIP_NO_INDEX": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    return done.returncode, done.stdout + done.stderr


HF = ["torch", "transformers", "accelerate", "safetensors", "gguf"]
SERVE = ["fastapi", "uvicorn"]


@pytest.mark.parametrize(
    ("hidden", "args", "extra"),
    [
        (HF, ["generate", "hi"], "hf"),
        (SERVE + HF, ["serve"], "guard"),
        (SERVE, ["serve", "--guard", "none", "--model", "scripted"], "serve"),
        ([*HF, "peft", "sklearn"], ["guard", "eval"], "guard"),
        ([*HF, "peft"], ["prefs", "train"], "prefs"),
    ],
)
def test_the_hint_names_the_extra(hidden: list[str], args: list[str], extra: str, tmp_path: Path) -> None:
    code, output = run_without(hidden, args, tmp_path)
    assert code == 2, output
    assert output.strip().splitlines() == [output.strip()], output  # one line
    assert f"pip install 'alignlab[{extra}]'" in output and "Traceback" not in output
    assert not any(tmp_path.rglob("*")), "nothing downloaded or staged"


def test_an_unchecked_missing_module_still_gets_the_hint(tmp_path: Path) -> None:
    # A module imported without an up-front check (here: `serve` with the check bypassed).
    code = (
        HIDE.format(hidden=["uvicorn"], argv=["alignlab", "serve", "--model", "scripted", "--guard", "none"])
        + "import alignlab.core.extras as extras\nextras.require = lambda *a, **k: None\n"
        + RUN
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: 'uvicorn' is not installed; install it with: pip install 'alignlab[serve]'"
    )


def test_a_usage_error_has_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alignlab", "generate"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "give either a PROMPT or --input FILE" in done.stderr and "Traceback" not in done.stderr
