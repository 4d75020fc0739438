"""Run untrusted Python programs fast, in confined, resource-limited processes.

A :class:`Sandbox` keeps warm worker processes (one per core by default). Each worker
is a fork server: it has imported the modules samples usually need, and for every
program it forks a fresh child, so no sample pays for an interpreter start and no
sample sees another's state. The child, before running the program:

* gets resource limits: CPU time (an exact timer, then a hard kill one second later),
  address space, file size, open files, and processes (none, by default);
* runs in its own process group, in a private temporary folder, with a scrubbed
  environment (no variable of the caller's) and stdin on ``/dev/null``;
* writes stdout and stderr to files the worker reads back up to a size cap;
* where the kernel allows: in user, network, mount and PID namespaces (no privilege
  outside, no network at all, a read-only file tree, and every process it starts is
  killed when it ends), under Landlock (reads only the Python installation and system
  folders, writes only its own folder, no TCP, no signals outside), and under a seccomp
  filter (no exec, no sockets, no new processes or namespaces, no ptrace).

Each worker reports the isolation it achieved (:attr:`Sandbox.isolation`); a missing
layer gives an :class:`IsolationWarning`, or a :class:`SandboxError` with
``require_isolation``. Verdicts are distinct (:class:`Verdict`): a program that ends
normally passed or failed (with the exception), one that ran out of CPU time timed
out, one that could not get memory ran out of memory, one killed by a signal died.
Time limits count CPU time, so a loaded machine does not turn a pass into a timeout;
a wall-clock backstop catches programs that sleep or block.

What it does not guarantee: the sandbox shares the kernel with the caller, so a
kernel exploit escapes it; without the kernel layers (macOS, containers that forbid
namespaces, old kernels) a program can read what its user can read, write where its
user can write, and reach the network; Landlock on this machine's kernel may not cover
every filesystem right (see ``docs/code-sandbox.md``); CPU-time limits cannot stop a
program that spends its time sleeping until the wall-clock backstop; and strict mode
(:mod:`alignlab.code.sandbox.strict`) stops reward hacks, not code written against alignlab.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from alignlab.code.sandbox.namespaces import Isolation
from alignlab.core.config import option
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


class IsolationWarning(UserWarning):
    """The kernel refused an isolation layer; the sandbox runs without it."""


class Verdict(StrEnum):
    """How a program ended."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OUT_OF_MEMORY = "out_of_memory"
    DIED = "died"


@dataclass(frozen=True)
class SandboxConfig:
    """How programs are run and confined."""

    workers: int = option(0, "worker processes (0: one per CPU core)")
    cpu_seconds: float = option(3.0, "CPU time a program may use before it times out")
    wall_seconds: float | None = option(None, "wall-clock backstop in seconds (default: 3 x CPU + 1)")
    memory_mb: int = option(1024, "address-space limit per program, MiB")
    file_size_mb: int = option(16, "largest file a program may write, MiB")
    processes: int = option(1, "processes a program may have, itself included (1: it cannot fork)")
    open_files: int = option(64, "open file descriptors per program")
    output_bytes: int = option(4096, "bytes of stdout and of stderr kept per program")
    tmp_mb: int = option(256, "size of each worker's private /tmp, MiB")
    strict: bool = option(True, "reject reward hacks such as always-equal return values")
    isolate: bool = option(True, "use the kernel isolation layers (namespaces, Landlock, seccomp)")
    require_isolation: bool = option(False, "fail instead of warning when a kernel layer is refused")

    def wall_limit(self) -> float:
        """The wall-clock backstop in seconds."""
        return self.wall_seconds if self.wall_seconds is not None else 3 * self.cpu_seconds + 1


@dataclass(frozen=True)
class Program:
    """A program to run: ``source``, then ``check(entry_point)`` when an entry point is given.

    Attributes:
        source: Python source; for HumanEval, prompt + completion + test.
        entry_point: the function the tests' ``check`` is called with, or None to just run ``source``.
    """

    source: str
    entry_point: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How one program ended.

    Attributes:
        verdict: passed, failed, timed_out, out_of_memory or died.
        detail: why, in words: the exception, the limit reached or the signal.
        cpu_seconds: CPU time the program used.
        wall_seconds: wall-clock time from fork to exit.
        stdout: the start of what it wrote to stdout (capped).
        stderr: the start of what it wrote to stderr (capped).
    """

    verdict: Verdict
    detail: str
    cpu_seconds: float
    wall_seconds: float
    stdout: str = ""
    stderr: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-able dict."""
        return asdict(self) | {"verdict": str(self.verdict)}


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


class Sandbox:
    """A pool of warm, confined workers that run :class:`Program` s.

    Use it as a context manager (workers start on entry or on first use and stop on exit)::

        with Sandbox(SandboxConfig(workers=2)) as sandbox:
            outcome = sandbox.run(Program("assert 1 + 1 == 2"))

    Args:
        config: limits, strictness and isolation settings.

    Raises:
        SandboxError: (on start) a worker could not start, or ``require_isolation`` is set
            and a layer was refused.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.isolation: Isolation | None = None
        """What the workers achieved; set when the sandbox starts."""

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        """The number of workers."""
        return self.config.workers or os.cpu_count() or 1

    def start(self) -> None:
        """Start the workers (does nothing if they run already).

        Raises:
            SandboxError: see the class.
        """
        with self._lock:
            if self._workers:
                return
            if sys.platform == "win32":
                raise SandboxError("the sandbox needs a POSIX system (fork); use WSL on Windows")
            # Every worker starts at once; then each greeting is awaited.
            starting = [_Worker(self.config) for _ in range(self.size)]
            try:
                for worker in starting:
                    self._workers.append(worker.ready())
                    self._idle.put(worker)
            except SandboxError:
                for worker in starting:
                    worker.close()
                self._workers.clear()
                self._idle = queue.Queue()
                raise
            self.isolation = self._workers[0].isolation
            assert self.isolation is not None
        self._report(self.isolation)

    def _report(self, report: Isolation) -> None:
        if not report.warnings:
            return
        message = "code sandbox isolation is incomplete: " + "; ".join(report.warnings)
        if self.config.require_isolation and self.config.isolate:
            self.close()
            raise SandboxError(message + " (require_isolation is set)")
        warnings.warn(message, IsolationWarning, stacklevel=3)

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers.clear()
            self._idle = queue.Queue()

    def run(self, program: Program) -> Outcome:
        """Run one program and return how it ended."""
        self.start()
        return self._run_one(program)

    def map(self, programs: Iterable[Program]) -> Iterator[Outcome]:
        """Run programs across the workers, yielding outcomes in the order given.

        Each worker has the next program queued while it runs one, so it never waits for
        the harness, and one thread serves them all. At most a few programs per worker are
        in flight, so a long iterable is consumed lazily and an abandoned iteration stops
        promptly (after the programs already sent).
        """
        self.start()
        lanes = [_Lane(self._idle.get())]
        with contextlib.suppress(queue.Empty):  # the workers no other caller is using
            while len(lanes) < self.size:
                lanes.append(_Lane(self._idle.get_nowait()))
        limit = self.config.wall_limit() + _SLACK_SECONDS
        window = (_QUEUED + 2) * len(lanes)
        stream, more = iter(programs), True
        done: dict[int, Outcome] = {}
        sent = given = 0
        try:
            while True:
                while given in done:
                    yield done.pop(given)
                    given += 1
                for lane in lanes:
                    while more and len(lane.sent) <= _QUEUED and sent - given < window:
                        program = next(stream, None)
                        if program is None:
                            more = False
                            break
                        if not lane.sent:
                            lane.deadline = time.monotonic() + limit
                        lane.worker.send(_job(program))
                        lane.sent.append((sent, program))
                        sent += 1
                busy = [lane for lane in lanes if lane.sent]
                if not busy:
                    return
                _service(
                    [lane.worker for lane in busy], min(lane.deadline for lane in busy) - time.monotonic()
                )
                for lane in busy:
                    self._collect(lane, done, limit)
        finally:
            for lane in lanes:  # results still due would reach this worker's next user
                while lane.sent:
                    self._collect(lane, {}, limit, drain=True)
                self._idle.put(lane.worker)

    def _collect(self, lane: _Lane, done: dict[int, Outcome], limit: float, drain: bool = False) -> None:
        """Move the results ``lane``'s worker has sent into ``done``; replace it if it died or went silent.

        With ``drain``, wait for the oldest result, and forget the other jobs if the worker dies.
        """
        while lane.sent:
            if drain:
                reply = lane.worker.receive(lane.deadline - time.monotonic())
            elif (reply := lane.worker.message()) is None and not (
                lane.worker.gone or time.monotonic() > lane.deadline
            ):
                return
            done[lane.sent.popleft()[0]] = _outcome(reply)
            lane.deadline = time.monotonic() + limit
            if reply is None or reply.get("retire"):  # died, or could not clean up after it
                lane.worker = self._replace(lane.worker)
                if drain:
                    lane.sent.clear()
                for _, program in lane.sent:  # the old worker never started these
                    lane.worker.send(_job(program))
            if drain:
                return

    def _run_one(self, program: Program) -> Outcome:
        worker = self._idle.get()
        reply = worker.request(_job(program), self.config.wall_limit() + _SLACK_SECONDS)
        if reply is None or reply.get("retire"):  # died, or could not clean up after the program
            worker = self._replace(worker)
        self._idle.put(worker)
        return _outcome(reply)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.process.kill()
        worker.close()
        fresh = _Worker(self.config).ready()
        with self._lock:
            self._workers = [fresh if w is worker else w for w in self._workers]
        return fresh
