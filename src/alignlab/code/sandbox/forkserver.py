"""The sandbox worker: a warm fork server that runs each sample in a fresh, confined child.

Started once per worker by :class:`alignlab.code.sandbox.Sandbox` as
``python -c "…forkserver.main()" CONFIG``. It imports the modules samples commonly use,
enters its namespaces (see :mod:`alignlab.code.sandbox.namespaces`), then reads one JSON job per
line on stdin and answers one JSON result per line on stdout. For each job it forks a
child that applies the per-sample limits and layers, runs the program and reports back
on a private pipe; the server then kills whatever the sample left running, reads the
capped output and removes the sample's folder.

What the forked child does (limits, layers, the program, its report) is
:mod:`alignlab.code.sandbox.child`. Only the standard library and the sibling modules
(namespaces, landlock, seccomp, child, strict) are imported here, so a worker starts fast
and forks small.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from alignlab.code.sandbox import landlock, namespaces, seccomp
from alignlab.code.sandbox.child import RECORD_BYTES, run_child, verdict
from alignlab.code.sandbox.strict import Guard

PRELOAD = (
    "collections", "itertools", "functools", "heapq", "bisect", "typing", "re", "string", "math",
    "cmath", "random", "statistics", "fractions", "decimal", "operator", "copy", "json", "hashlib",
    "datetime", "numbers", "array", "enum", "dataclasses", "abc", "unicodedata", "textwrap",
)  # fmt: skip
"""Imported once per worker so samples do not pay for these imports."""

_dumps, _loads = json.dumps, json.loads  # kept before any sample can patch them


@dataclass(frozen=True)
class _Child:
    """A forked child waiting for its job: its pid, the job pipe, the result pipe, its nonce."""

    pid: int
    job: int
    result: int
    nonce: str


def main() -> None:
    """Entry point of a worker process; ``sys.argv[1]`` is its JSON configuration."""
    config = _loads(sys.argv[1])
    namespaces.set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when workers stop
    for name in config["preload"]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    report = namespaces.Isolation()
    if config["isolate"]:
        namespaces.enter_worker_namespaces(report, config["tmp_bytes"])
    else:
        report.identity = f"uid {os.geteuid()}"
        report.warnings.append("kernel isolation turned off by configuration")
    if report.pid_namespace:
        server = os.fork()
        if server:  # this process only waits: its child is init of the new PID namespace
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):
                os.dup2(null, fd)
            status = os.waitpid(server, 0)[1]
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        namespaces.set_parent_death_signal()
    elif sys.platform == "linux":
        namespaces.become_subreaper()
    ForkServer(config, report).serve()


class ForkServer:
    """Runs jobs from stdin, one forked child each, and writes results to stdout.

    Args:
        config: the worker configuration built by the sandbox.
        report: the isolation achieved so far, completed here with the per-sample layers.
    """

    def __init__(self, config: dict[str, Any], report: namespaces.Isolation) -> None:
        self.limits: dict[str, Any] = config["limits"]
        # The snapshot of what samples must not touch is taken once, here, before any sample runs.
        self.guard = Guard() if config["strict"] else None
        self.report = report
        self.landlock: landlock.LandlockPolicy | None = None
        self.seccomp: seccomp.SeccompFilter | None = None
        if config["isolate"] and sys.platform == "linux":
            self._prepare_layers()
        self.root = tempfile.mkdtemp(prefix="alignlab-sandbox-")
        # Every sample gets the same (emptied, recreated) folder, so its environment is set once here.
        self.folder = os.path.join(self.root, "work")
        self.out_path, self.err_path = self.folder + ".out", self.folder + ".err"
        os.environ.update(HOME=self.folder, TMPDIR=self.folder)
        tempfile.tempdir = self.folder
        self.stdin = os.fdopen(os.dup(0), "rb")
        self.stdout = os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)
        os.close(null)
        report.limits = self._describe_limits()
        gc.freeze()  # keeps the collector from touching (and so copying) every inherited page

    def _prepare_layers(self) -> None:
        abi = landlock.landlock_abi()
        if abi:
            self.landlock = landlock.LandlockPolicy(abi)
        program = seccomp.seccomp_program(allow_fork=self.limits["processes"] > 1)
        self.seccomp = seccomp.SeccompFilter(program) if program is not None else None
        namespaces.drop_capabilities()
        if not namespaces.no_new_privileges():
            self.landlock, self.seccomp = None, None
        if self.landlock is not None and not self._works(self._try_landlock):
            self.landlock = None
        if self.seccomp is not None and not self._works(self._try_seccomp):
            self.seccomp = None
        self.report.landlock_abi = self.landlock.abi if self.landlock else 0
        self.report.seccomp = self.seccomp is not None
        if not self.landlock:
            self.report.warnings.append(
                "no Landlock: only a read-only mount (if any) stops writes outside the sample folder"
            )
        elif abi < 6:
            self.report.warnings.append(
                f"Landlock ABI {abi} < 6: signals outside the sandbox are not blocked"
            )
        if not self.seccomp:
            self.report.warnings.append("no seccomp filter: exec, sockets and new processes are not blocked")

    def _try_landlock(self) -> None:
        assert self.landlock is not None
        self.landlock.apply(tempfile.gettempdir())

    def _try_seccomp(self) -> None:
        assert self.seccomp is not None
        self.seccomp.install()

    @staticmethod
    def _works(layer: Any) -> bool:
        pid = os.fork()
        if pid == 0:
            try:
                layer()
            except BaseException:
                os._exit(1)
            os._exit(0)
        return os.waitpid(pid, 0)[1] == 0

    def _describe_limits(self) -> list[str]:
        lim = self.limits
        described = [
            f"cpu {lim['cpu_seconds']} s (wall backstop {lim['wall_seconds']} s)",
            f"address space {lim['memory_bytes'] >> 20} MiB",
            f"file size {lim['file_size_bytes'] >> 20} MiB",
            f"open files {lim['open_files']}",
        ]
        if lim["processes"] <= 1 and self.seccomp is not None:
            described.append("no new processes (seccomp)")
        elif self.nproc_enforced():
            described.append(f"processes {lim['processes']}")
        else:
            described.append("processes: not limited (root identity or shared user)")
            self.report.warnings.append("the process limit cannot be enforced here")
        return described

    def nproc_enforced(self) -> bool:
        """Whether RLIMIT_NPROC can limit samples (in a user namespace, not as capability-less root)."""
        return self.report.user_namespace and self.report.identity != "root without capabilities"

    def serve(self) -> None:
        """Answer jobs until stdin closes."""
        # Outside a private /tmp the harness removes our folder if we die without doing so.
        scratch = None if self.report.mount_namespace else self.root
        self._send({"isolation": self.report.to_dict(), "scratch": scratch})
        ready = self._spawn()
        for line in self.stdin:
            try:
                result = self.run(ready, line)
            except Exception as exc:  # a harness bug must not look like a sample's verdict
                result = {"verdict": "died", "detail": f"worker error: {type(exc).__name__}: {exc}"}
                result |= {"cpu_seconds": 0.0, "wall_seconds": 0.0, "stdout": "", "stderr": ""}
            self._send(result)
            # The next child forks and confines itself while the harness reads this result.
            ready = self._spawn()
        with contextlib.suppress(OSError):
            os.kill(ready.pid, signal.SIGKILL)
            os.waitpid(ready.pid, 0)
        shutil.rmtree(self.root, ignore_errors=True)

    def _send(self, message: dict[str, Any]) -> None:
        data = (_dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.stdout, data) :]

    def _spawn(self) -> _Child:
        """Fork the child for the next job; it confines itself, then waits for the job."""
        if os.path.lexists(self.folder):  # left over from a job the server failed on
            shutil.rmtree(self.folder, ignore_errors=True)
        os.mkdir(self.folder, 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        out_fd, err_fd = os.open(self.out_path, flags, 0o600), os.open(self.err_path, flags, 0o600)
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        nonce = os.urandom(8).hex()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (job_write, result_read, self.stdout, self.stdin.fileno()):
                    os.close(fd)
                run_child(self, job_read, (out_fd, err_fd, result_write), nonce)
            finally:
                os._exit(70)
        for fd in (out_fd, err_fd, result_write, job_read):
            os.close(fd)
        return _Child(pid, job_write, result_read, nonce)

    def run(self, child: _Child, job: bytes) -> dict[str, Any]:
        """Hand one job (a JSON line) to a spawned child; return its result record."""
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError):  # a child that died early is judged below
            while job:
                job = job[os.write(child.job, job) :]
        os.close(child.job)
        status, usage, wall_killed = self._wait(child.pid)
        wall = time.monotonic() - started
        self._sweep(child.pid)
        record = _read_record(child.result, child.nonce)
        os.close(child.result)
        cap = self.limits["output_bytes"]
        result = {
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 6),
            "wall_seconds": round(wall, 6),
            "stdout": _read_capped(self.out_path, cap),
            "stderr": _read_capped(self.err_path, cap),
        }
        result |= self._verdict(record, status, result, wall_killed)
        try:
            os.rmdir(self.folder)
        except OSError:  # the sample left files behind
            shutil.rmtree(self.folder, ignore_errors=True)
        return result

    def _wait(self, pid: int) -> tuple[int, resource.struct_rusage, bool]:
        killed = False
        deadline = self.limits["wall_seconds"]
        if hasattr(os, "pidfd_open"):
            handle = os.pidfd_open(pid)
            try:
                if not select.select([handle], [], [], deadline)[0]:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            finally:
                os.close(handle)
        else:  # pragma: no cover - platforms without pidfd (macOS): poll
            end = time.monotonic() + deadline
            while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                if time.monotonic() > end:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.002)
        _, status, usage = os.wait4(pid, 0)
        return status, usage, killed

    def _sweep(self, pid: int) -> None:
        """Kill and reap everything the sample started, wherever it went."""
        if self.report.pid_namespace:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)  # as init: every other process in the namespace
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            for _ in range(1000):
                children = _children()
                if not children:
                    break
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                for child in children:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(child, 0)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break

    def _verdict(
        self, record: dict[str, Any] | None, status: int, result: dict[str, Any], wall_killed: bool
    ) -> dict[str, str]:
        cpu_limit = self.limits["cpu_seconds"]
        if wall_killed:
            return verdict("timed_out", f"wall-clock backstop of {self.limits['wall_seconds']} s reached")
        if result["cpu_seconds"] > cpu_limit or (record is not None and record["verdict"] == "timed_out"):
            return verdict("timed_out", f"CPU time limit of {cpu_limit} s reached")
        if record is not None:
            return verdict(record["verdict"], record["detail"])
        oom = "MemoryError" in result["stderr"] or "Cannot allocate memory" in result["stderr"]
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if oom:
                return verdict("out_of_memory", f"out of memory (killed by {_signal_name(number)})")
            return verdict("died", f"killed by {_signal_name(number)}")
        code = os.waitstatus_to_exitcode(status)
        if oom:
            return verdict("out_of_memory", f"out of memory (exit status {code})")
        return verdict("failed", f"exited with status {code} before the tests finished")


def _read_record(fd: int, nonce: str) -> dict[str, Any] | None:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, RECORD_BYTES):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 4 * RECORD_BYTES:
                break
    for line in b"".join(chunks).splitlines():
        try:
            record = _loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("nonce") == nonce:
            verdict, detail = record.get("verdict"), record.get("detail")
            if verdict in ("passed", "failed", "timed_out", "out_of_memory") and isinstance(detail, str):
                return {"verdict": verdict, "detail": detail}
    return None


def _read_capped(path: str, cap: int) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(cap).decode("utf-8", "replace")
    except OSError:
        return ""


def _children() -> list[int]:
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as handle:
            return [int(pid) for pid in handle.read().split()]
    except OSError:
        return []


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
