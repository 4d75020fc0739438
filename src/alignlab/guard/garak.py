"""garak, the LLM vulnerability scanner, installed on first use and run against an OpenAI-compatible URL.

garak lives in its own virtual environment under the alignlab cache (its pinned
dependencies conflict with alignlab's), installed once per version and reused. A run is a
subprocess: ``python -m garak --config RUN.json --spec probes.X,...`` with garak's
``openai.OpenAICompatible`` generator pointed at the target, its XDG folders moved under
the output folder so it reads no user configuration, and its report written as
``NAME.report.jsonl`` beside the run's log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alignlab.errors import EndpointError, ToolInstallError, ToolRunError

GENERATOR = "openai.OpenAICompatible"
# garak reads the key from this variable; alignlab's server ignores it.
KEY_VARIABLE = "OPENAICOMPATIBLE_API_KEY"
_STAMP = "alignlab-installed.json"


@dataclass(frozen=True)
class GarakRun:
    """One garak run against one target.

    Attributes:
        name: the report's name (``NAME.report.jsonl``), e.g. ``"guarded"``.
        url: the target's base URL (``http://host:port`` or ``.../v1``).
        probes: garak probe names, ``module.Class``.
        generations: outputs asked per prompt.
        max_prompts: most prompts per probe (garak's ``soft_probe_prompt_cap``).
        max_tokens: completion tokens asked per prompt.
        parallel: attempts sent at once (1: one after another).
        seed: garak's random seed (which prompts a cap keeps).
    """

    name: str
    url: str
    probes: tuple[str, ...]
    generations: int = 1
    max_prompts: int = 8
    max_tokens: int = 128
    parallel: int = 1
    seed: int = 0


def venv_dir(version: str) -> Path:
    """Where garak ``version`` is (or will be) installed."""
    from alignlab.models.embedded import cache_root

    return cache_root() / "redteam" / f"garak-{version}"


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_garak(version: str, requirements: Sequence[str]) -> Path:
    """The Python of a virtual environment holding ``garak==version``; installs it once. Idempotent.

    garak goes in with ``--no-deps``, then ``requirements``; the environment is built in a
    staging folder and moved into place only once complete, so an interrupted install
    leaves nothing half-made behind.

    Raises:
        ToolInstallError: venv or pip failed (the error names the install log).
    """
    target = venv_dir(version)
    stamp: dict[str, object] = {"garak": version, "requirements": list(requirements)}
    if _installed(target, stamp):
        return _python(target)
    from rich.console import Console

    from alignlab.core.progress import progress_bar

    target.parent.mkdir(parents=True, exist_ok=True)
    log = target.parent / f"garak-{version}.install.log"
    staging = Path(tempfile.mkdtemp(prefix=f".garak-{version}-", dir=target.parent))
    Console(stderr=True).print(f"installing garak {version} into {target} (once; see {log})")
    steps = [
        ("creating a virtual environment", [sys.executable, "-m", "venv", str(staging)]),
        ("installing garak", ["-m", "pip", "install", "--no-deps", f"garak=={version}"]),
        ("installing what its probes use", ["-m", "pip", "install", *requirements]),
    ]
    try:
        with log.open("w") as out, progress_bar() as bar:
            task = bar.add_task(f"garak {version}", total=len(steps))
            for description, command in steps:
                bar.update(task, description=f"garak {version}: {description}")
                argv = command if command[0] == sys.executable else [str(_python(staging)), *command]
                if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                    raise ToolInstallError("garak", version, f"{description} failed", log)
                bar.advance(task)
        (staging / _STAMP).write_text(json.dumps(stamp))
        if not _installed(target, stamp):  # another process may have finished first
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _python(target)


def _installed(venv: Path, stamp: dict[str, object]) -> bool:
    path = venv / _STAMP
    return path.is_file() and bool(json.loads(path.read_text()) == stamp)


def openai_base(url: str) -> str:
    """The OpenAI API base of a server URL: ``http://h:p`` and ``http://h:p/v1/`` give ``http://h:p/v1/``."""
    base = url.rstrip("/")
    return (base if base.endswith("/v1") else base + "/v1") + "/"


def served_model(url: str) -> str:
    """The first model a target lists at ``/v1/models``.

    Raises:
        EndpointError: the target is unreachable or lists no model.
    """
    import httpx

    models = openai_base(url) + "models"
    try:
        response = httpx.get(models, timeout=30)
        response.raise_for_status()
        return str(response.json()["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        raise EndpointError(models, f"no model listed ({exc}); is the server running?") from exc


def garak_config(run: GarakRun, model: str, report_dir: Path) -> dict[str, object]:
    """garak's run configuration for ``run`` (its ``--config`` file, as a dict)."""
    options = {
        "uri": openai_base(run.url),
        "max_tokens": run.max_tokens,
        # garak's defaults add stop strings ("#", ";") that would cut replies short, and
        # penalties alignlab's server does not implement.
        "suppressed_params": ["stop", "frequency_penalty", "presence_penalty"],
    }
    return {
        "system": {"narrow_output": True, "parallel_attempts": run.parallel if run.parallel > 1 else False},
        "run": {"generations": run.generations, "soft_probe_prompt_cap": run.max_prompts, "seed": run.seed},
        "plugins": {
            "target_type": GENERATOR,
            "target_name": model,
            "extended_detectors": False,
            "generators": {"openai": {"OpenAICompatible": options}},
        },
        "reporting": {
            "report_dir": str(report_dir),
            "report_prefix": run.name,
            "confidence_interval_method": "none",
        },
    }


def run_garak(python: Path, run: GarakRun, folder: Path, timeout_s: float) -> Path:
    """Run garak as configured by ``run``; return its report (``folder/NAME.report.jsonl``).

    Its output goes to ``folder/NAME.log``; a progress bar follows the probes it finishes.

    Raises:
        EndpointError: the target lists no model.
        ToolRunError: garak exited with an error, wrote no complete report, or ran past ``timeout_s``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{run.name}.garak.json"
    config.write_text(json.dumps(garak_config(run, served_model(run.url), folder), indent=2))
    report, log = folder / f"{run.name}.report.jsonl", folder / f"{run.name}.log"
    report.unlink(missing_ok=True)
    # garak keeps its caches beside its install, its log with the run, and finds no user
    # configuration (an empty config folder), so a run depends on nothing but its arguments.
    venv = python.parent.parent
    homes = {"DATA": folder / "garak-data", "CACHE": venv / "garak-cache", "CONFIG": venv / "garak-config"}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {f"XDG_{kind}_HOME": str(path) for kind, path in homes.items()}
    env.setdefault(KEY_VARIABLE, "unused")
    spec = ",".join(f"probes.{p}" for p in run.probes)
    argv = [str(python), "-m", "garak", "--config", str(config), "--spec", spec]
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        code = _follow(process, report, log, run, timeout_s)
    if code != 0 or not _complete(report):
        said = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        last = f" (its last words: {said[-1][:300]!r})" if said else ""
        raise ToolRunError("garak", f"exited with {code} without a complete report{last}", log)
    return report


def _follow(
    process: subprocess.Popen[bytes], report: Path, log: Path, run: GarakRun, timeout_s: float
) -> int:
    """Wait for garak, advancing a bar per probe evaluated; kill it past ``timeout_s``."""
    from alignlab.core.progress import progress_bar

    deadline = time.monotonic() + timeout_s
    with progress_bar() as bar:
        task = bar.add_task(f"garak → {run.name}", total=len(run.probes))
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise ToolRunError("garak", f"ran past {timeout_s:.0f} s and was stopped", log)
            bar.update(task, completed=len(_evaluated(report)))
            time.sleep(0.5)
        bar.update(task, completed=len(_evaluated(report)))
    return process.returncode


def _entries(report: Path) -> list[dict[str, object]]:
    if not report.is_file():
        return []
    entries = []
    for line in report.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the last line may be half-written while garak runs
    return entries


def _evaluated(report: Path) -> set[object]:
    return {e.get("probe") for e in _entries(report) if e.get("entry_type") == "eval"}


def _complete(report: Path) -> bool:
    return any(e.get("entry_type") == "completion" for e in _entries(report))


def run_seconds(report: Path) -> float | None:
    """How long garak ran, from the start and end times its report records (None if it lacks them)."""
    import datetime

    times = {e["entry_type"]: e for e in _entries(report) if e.get("entry_type") in ("init", "completion")}
    try:
        start = datetime.datetime.fromisoformat(str(times["init"]["start_time"]))
        end = datetime.datetime.fromisoformat(str(times["completion"]["end_time"]))
    except (KeyError, ValueError):
        return None
    return round((end - start).total_seconds(), 1)
