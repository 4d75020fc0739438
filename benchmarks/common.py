"""What every benchmark records beside its numbers: the machine, the command, the time."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(*options: str, timeout: float = 180) -> Iterator[str]:
    """``alignlab serve OPTIONS`` on a free 127.0.0.1 port in a subprocess; yields its URL once healthy."""
    import httpx

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "alignlab",
        "serve",
        *options,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _scrub(argument: str) -> str:
    """An absolute path names this machine's folders (a temp or work folder): record a placeholder."""
    name, equals, value = argument.partition("=") if argument.startswith("-") else ("", "", argument)
    return name + equals + "PATH" if os.path.isabs(value) or value.startswith("~") else argument


def add_guards(parser: Any, help: str, *, required: bool = False) -> None:
    """``--guard LABEL SPEC``, repeatable: the guards a benchmark compares, each with its label.

    Two arguments rather than ``LABEL=SPEC`` so a folder stays its own argument, which the
    recorded command replaces by ``PATH``.
    """
    parser.add_argument(
        "--guard", nargs=2, action="append", required=required, metavar=("LABEL", "SPEC"), help=help
    )


def guard_stamp(spec: str = "default") -> str:
    """The first 16 hex digits of the sha256 of a guard folder's files (``default``: the shipped guard).

    Each guard benchmark records it, so the docs can say when a figure was measured on another guard.
    """
    from alignlab.guard.evaluate import fingerprint
    from alignlab.guard.load import guard_folder

    return fingerprint(guard_folder(spec))[:16]


def write(name: str, results: dict[str, Any]) -> Path:
    """Write ``results/NAME.json`` with the machine and the command that made it."""
    from alignlab import __version__

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "benchmark": name,
        "command": "python "
        + shlex.join(["benchmarks/" + Path(sys.argv[0]).name, *map(_scrub, sys.argv[1:])]),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "alignlab": __version__,
        "machine": machine(),
        **results,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path


def open_work(work: Path, settings: dict[str, Any], fresh: bool, key: str | tuple[str, ...]) -> Any:
    """A resumable results file in ``work``, keyed by ``key``; refuses results made with other settings."""
    import shutil

    from alignlab.core.results import ResultsFile

    if fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    stored = work / "settings.json"
    if stored.is_file() and json.loads(stored.read_text()) != settings:
        raise SystemExit(f"{work} holds results made with other settings; pass --fresh or another --work")
    stored.write_text(json.dumps(settings, indent=2) + "\n")
    return ResultsFile(work / "results.jsonl", key)
