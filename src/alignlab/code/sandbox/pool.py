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
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator

from alignlab.code.sandbox.namespaces import Isolation
from alignlab.code.sandbox.program import IsolationWarning, Outcome, Program, SandboxConfig, Verdict
from alignlab.code.sandbox.worker import _QUEUED, _SLACK_SECONDS, _job, _Lane, _outcome, _service, _Worker
from alignlab.errors import SandboxError

__all__ = ["IsolationWarning", "Outcome", "Program", "Sandbox", "SandboxConfig", "Verdict"]


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
