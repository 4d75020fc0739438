"""The sandbox worker: a warm fork server that runs each sample in a fresh, confined child.

Started once per worker by :class:`alignlab.code.sandbox.Sandbox` as
``python -c "…forkserver.main()" CONFIG``. It imports the modules samples commonly use,
enters its namespaces (see :mod:`alignlab.code.sandbox.namespaces`), puts itself under
the Landlock domain every sample runs in, then reads one JSON job per line on stdin and
answers one JSON result per line on stdout. For each job it forks a child that applies
the per-sample limits and the seccomp filter, runs the program and reports back on a
private pipe; the server then kills whatever the sample left running, reads the capped
output and empties the sample's folder.

What the forked child does (limits, seccomp, the program, its report) is
:mod:`alignlab.code.sandbox.child`. Only the standard library and the sibling modules
(namespaces, landlock, seccomp, child, reap, strict) are imported here, so a worker starts fast
and forks small.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from alignlab.code.sandbox import landlock, namespaces, reap, seccomp
from alignlab.code.sandbox.child import (
    RECORD_BYTES,
    execute,
    prepare_signals,
    resource_limits,
    run_child,
    verdict,
)
from alignlab.code.sandbox.strict import Guard

PRELOAD = (
    "collections", "itertools", "functools", "heapq", "bisect", "typing", "re", "string", "math",
    "cmath", "random", "statistics", "fractions", "decimal", "operator", "copy", "json", "hashlib",
    "datetime", "numbers", "array", "enum", "dataclasses", "abc", "unicodedata", "textwrap",
)  # fmt: skip
"""Imported once per worker so samples do not pay for these imports."""

_dumps, _loads = json.dumps, json.loads  # kept before any sample can patch them
_WARM_UP = """
def candidate(numbers: list, n: int) -> list:
    \"\"\"Every number times n.\"\"\"
    return [x * n for x in numbers if isinstance(x, int)]

def check(candidate):
    assert candidate([1, 2, 3], 2) == [2, 4, 6]
    assert abs(sum(candidate([1.5, 2], 3)) - 6) < 1e-6
"""
_WARM_UP_RUNS = 10


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
        # The seccomp filter the server installs for itself and its children, and the one each child adds.
        self.seccomp_server: seccomp.SeccompFilter | None = None
        self.seccomp: seccomp.SeccompFilter | None = None
        if config["isolate"] and sys.platform == "linux":
            self._prepare_layers()
        self._open_files()
        if self.landlock is not None:
            # The server enters the samples' domain itself: every child inherits it at fork.
            self.landlock.apply(self.folder)
            self.landlock.close()
        if self.seccomp is not None:
            assert self.seccomp_server is not None
            self.seccomp_server.install()
        report.limits = self._describe_limits()
        self.rlimits = resource_limits(self.limits, self.nproc_enforced())
        prepare_signals()
        self._warm_up()
        gc.freeze()  # keeps the collector from touching (and so copying) every inherited page

    def _open_files(self) -> None:
        """The samples' folder and output files, and the descriptors a child must not keep."""
        self.root = tempfile.mkdtemp(prefix="alignlab-sandbox-")
        # Every sample gets the same folder, emptied after each, so its environment, the working
        # directory the children inherit and the Landlock rule for it are set once, here.
        self.folder = os.path.join(self.root, "work")
        os.mkdir(self.folder, 0o700)
        os.chdir(self.folder)
        os.environ.update(HOME=self.folder, TMPDIR=self.folder)
        tempfile.tempdir = self.folder
        # The sample's stdout and stderr: a file each, written by the child through the first
        # descriptor, read back and truncated by the server through the second.
        self.outputs: list[tuple[int, int]] = []
        for path in (self.folder + ".out", self.folder + ".err"):
            write = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self.outputs.append((write, os.open(path, os.O_RDONLY)))
        self.null = os.open(os.devnull, os.O_RDONLY)
        self.children = reap.open_children() if not self.report.pid_namespace else None
        self.stdin = os.fdopen(os.dup(0), "rb")
        self.stdout = os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(null, fd)
        os.close(null)
        # What a child closes once it has its own 0, 1 and 2: nothing of the server stays open in it.
        self.private = [self.stdin.fileno(), self.stdout, self.null, *sum(self.outputs, ())]
        if self.children is not None:
            self.private.append(self.children)

    def _warm_up(self) -> None:
        """Run a small trusted program through the child's path a few times, here, before any fork.

        CPython specialises code as it runs it, writing to the code objects and caches
        involved; done here, each child writes (and so copies) fewer of the pages it shares
        with the server.
        """
        for _ in range(_WARM_UP_RUNS):
            random.seed(0)
            _dumps(execute(_WARM_UP, "candidate", self.guard) | {"nonce": ""})

    def _prepare_layers(self) -> None:
        abi = landlock.landlock_abi()
        if abi:
            self.landlock = landlock.LandlockPolicy(abi)
        programs = seccomp.seccomp_programs(allow_fork=self.limits["processes"] > 1)
        if programs is not None:
            self.seccomp_server, self.seccomp = (seccomp.SeccompFilter(p) for p in programs)
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
        assert self.seccomp_server is not None and self.seccomp is not None
        self.seccomp_server.install()
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
        """Answer jobs until stdin closes, or until the folder cannot be made clean for the next."""
        # Outside a private /tmp the harness removes our folder if we die without doing so.
        scratch = None if self.report.mount_namespace else self.root
        self._send({"isolation": self.report.to_dict(), "scratch": scratch})
        for line in self.stdin:
            try:
                result = self.run(line)
            except Exception as exc:  # a harness bug must not look like a sample's verdict
                result = {"verdict": "died", "detail": f"worker error: {type(exc).__name__}: {exc}"}
                result |= {"cpu_seconds": 0.0, "wall_seconds": 0.0, "stdout": "", "stderr": ""}
                result["retire"] = True  # what the failed job left behind is unknown
            self._send(result)
            if result.get("retire"):
                break
        shutil.rmtree(self.root, ignore_errors=True)

    def _send(self, message: dict[str, Any]) -> None:
        data = (_dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.stdout, data) :]

    def run(self, line: bytes) -> dict[str, Any]:
        """Run one job (a JSON line) in a forked child; return its result record.

        The record carries ``retire`` when the sample's folder could not be emptied: the
        harness then replaces this worker, so no sample sees what another left.
        """
        job = _loads(line)
        source, entry_point = job["source"], job.get("entry_point")
        result_read, result_write = os.pipe()
        nonce = os.urandom(8).hex()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(result_read)
                run_child(self, source, entry_point, result_write, nonce)
            finally:
                os._exit(70)
        os.close(result_write)
        status, usage, wall_killed = reap.wait(pid, self.limits["wall_seconds"])
        wall = time.monotonic() - started
        reap.sweep(pid, self.report.pid_namespace, self.children)
        record = _read_record(result_read, nonce)
        os.close(result_read)
        cap = self.limits["output_bytes"]
        result = {
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 6),
            "wall_seconds": round(wall, 6),
            "stdout": self._take_output(0, cap),
            "stderr": self._take_output(1, cap),
        }
        result |= self._verdict(record, status, result, wall_killed)
        if not reap.empty(self.folder):
            result["retire"] = True
        return result

    def _take_output(self, index: int, cap: int) -> str:
        """The start of what the sample wrote to stdout (0) or stderr (1); the file is emptied."""
        write, read = self.outputs[index]
        data = os.pread(read, cap, 0)
        os.ftruncate(write, 0)
        os.lseek(write, 0, os.SEEK_SET)
        return data.decode("utf-8", "replace")

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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
