"""The caller's side of one fork-server worker: its start, its pipes and its replies.

A worker is one warm Python process (``forkserver``) that forks a confined child per program;
this module starts it, sends it jobs, reads its replies and retires it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from alignlab.code.sandbox.namespaces import Isolation
from alignlab.code.sandbox.program import Outcome, Program, SandboxConfig, Verdict
from alignlab.errors import SandboxError

# The worker's packages are entered as bare modules, without running their __init__ files:
# alignlab's reads package metadata (importlib.metadata and all it imports), and every
# page a worker holds makes each fork and exit dearer. random is imported first, without
# the hook it registers to reseed itself from the OS in every forked child: each child
# seeds it to 0 itself, for repeatable verdicts, so the reseed was work thrown away.
_BOOTSTRAP = """
import os, sys, types
register_at_fork, os.register_at_fork = os.register_at_fork, lambda **hooks: None
import random
os.register_at_fork = register_at_fork
packages = ("alignlab", ""), ("alignlab.code", "/code"), ("alignlab.code.sandbox", "/code/sandbox")
for name, path in ((name, sys.argv[2] + suffix) for name, suffix in packages):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from alignlab.code.sandbox.forkserver import main
main()
"""
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",  # the same set and dict orders in every run: repeatable verdicts
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    # Every shared-library symbol is resolved as the worker starts, not on its first call in
    # each child, where writing the resolved address copies a page the child shares with the server.
    "LD_BIND_NOW": "1",
}
_START_SECONDS = 60.0
_SLACK_SECONDS = 30.0


class _Worker:
    """One worker process and its JSON-lines pipe; it is ready to use once :meth:`ready` returns."""

    def __init__(self, config: SandboxConfig) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        settings = {
            "preload": _preload(),
            "isolate": config.isolate,
            "strict": config.strict,
            "tmp_bytes": config.tmp_mb << 20,
            "limits": {
                "cpu_seconds": config.cpu_seconds,
                "wall_seconds": config.wall_limit(),
                "memory_bytes": config.memory_mb << 20,
                "file_size_bytes": config.file_size_mb << 20,
                "processes": config.processes,
                "open_files": config.open_files,
                "output_bytes": config.output_bytes,
            },
        }
        package = str(Path(__file__).resolve().parents[2])
        self.process = subprocess.Popen(
            [sys.executable, "-s", "-B", "-c", _BOOTSTRAP, json.dumps(settings), package],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_ENV,
            cwd="/",
            start_new_session=True,  # a Ctrl-C at the terminal reaches the harness, not the workers
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin
        # Jobs are written without blocking, so a worker that is busy writing a large result
        # and a harness writing it the next job cannot wait on each other.
        os.set_blocking(self._in.fileno(), False)
        self._out = self.process.stdout.fileno()
        self._buffer = b""
        self._unsent = b""
        self.gone = False
        """The worker closed its end or stopped reading: no more results will come."""
        self._scratch: str | None = None
        self.isolation: Isolation | None = None
        """What the worker achieved; set by :meth:`ready`."""

    def ready(self) -> _Worker:
        """Wait for the worker's greeting (the isolation it achieved); returns the worker.

        Raises:
            SandboxError: the worker failed to start (it is closed).
        """
        hello = self.receive(_START_SECONDS)
        if hello is None or "isolation" not in hello:
            self.close()
            raise SandboxError(f"a sandbox worker failed to start: {self._error_text()}")
        self.isolation = Isolation.from_dict(hello["isolation"])
        self._scratch = hello.get("scratch")
        return self

    def _error_text(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:] or f"exit status {self.process.poll()}"

    def request(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send a job and wait for its result; None if the worker died or went silent."""
        if not self.send(job):
            return None
        return self.receive(timeout)

    def send(self, job: dict[str, Any]) -> bool:
        """Queue a job for the worker (it runs jobs in the order sent); False if it is gone."""
        self._unsent += (json.dumps(job) + "\n").encode()
        self._flush()
        return not self.gone

    def _flush(self) -> None:
        try:
            while self._unsent:
                self._unsent = self._unsent[os.write(self._in.fileno(), self._unsent) :]
        except BlockingIOError:
            pass  # the rest goes out while waiting for results
        except OSError:
            self.gone = True

    def _read(self) -> None:
        chunk = os.read(self._out, 1 << 16)
        if chunk:
            self._buffer += chunk
        else:
            self.gone = True

    def message(self) -> dict[str, Any] | None:
        """The next message already read (the result of the oldest job sent), or None."""
        if b"\n" not in self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None if the worker died or went silent for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (message := self.message()) is None and not self.gone:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            _service([self], left)
        return message

    def close(self) -> None:
        """Ask the worker to stop (close its stdin), then kill it if it lingers."""
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


_QUEUED = 1
"""Jobs queued at a worker behind the one it runs."""


def _job(program: Program) -> dict[str, Any]:
    return {"source": program.source, "entry_point": program.entry_point}


def _outcome(reply: dict[str, Any] | None) -> Outcome:
    if reply is None:
        return Outcome(Verdict.DIED, "the program took its worker down; the worker was restarted", 0.0, 0.0)
    return Outcome(
        verdict=Verdict(reply["verdict"]),
        detail=reply["detail"],
        cpu_seconds=reply["cpu_seconds"],
        wall_seconds=reply["wall_seconds"],
        stdout=reply["stdout"],
        stderr=reply["stderr"],
    )


def _service(workers: list[_Worker], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for any of ``workers`` to write; read that, send what is unsent."""
    readers = {worker._out: worker for worker in workers}
    writers = {worker._in.fileno(): worker for worker in workers if worker._unsent}
    readable, writable, _ = select.select(list(readers), list(writers), [], max(0.0, timeout))
    for fd in writable:
        writers[fd]._flush()
    for fd in readable:
        readers[fd]._read()


class _Lane:
    """A worker :meth:`Sandbox.map` holds, the jobs it has sent it (oldest first) and their deadline."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.sent: deque[tuple[int, Program]] = deque()
        self.deadline = 0.0


def _preload() -> list[str]:
    from alignlab.code.sandbox.forkserver import PRELOAD

    return list(PRELOAD)
