"""The sample's child process: its limits and layers, the program, then ``check(entry_point)``.

:func:`run_child` runs in the process the fork server forks for each sample: it applies the
resource limits, Landlock and seccomp, reads the job, runs it (:func:`execute`) and writes a
``{"verdict", "detail"}`` record for the fork server on a private pipe.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import random
import resource
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from alignlab.code.sandbox.strict import Guard, StrictViolation

if TYPE_CHECKING:
    from alignlab.code.sandbox.forkserver import ForkServer

RECORD_BYTES = 64 * 1024
"""The most a child's report may take on its pipe."""
_dumps, _loads, _write = json.dumps, json.loads, os.write  # kept before any sample can patch them

_DETAIL_CHARS = 1000


class CpuTimeLimit(BaseException):
    """Raised in a sample when its CPU time runs out (a BaseException: ``except Exception`` misses it)."""


def verdict(name: str, detail: str) -> dict[str, str]:
    """A result record."""
    return {"verdict": name, "detail": detail}


def cpu_time_up(signum: int, frame: object) -> None:
    """The SIGPROF handler: the CPU time is up."""
    raise CpuTimeLimit


def execute(source: str, entry_point: str | None, guard: Guard | None) -> dict[str, Any]:
    """Run ``source``; if ``entry_point`` is given, then call ``check(entry_point)``.

    Returns:
        ``{"verdict", "detail"}``: passed, or failed / timed_out / out_of_memory with why.
    """
    try:
        namespace: dict[str, Any] = {"__name__": "__sample__", "__builtins__": builtins}
        exec(compile(source, "<sample>", "exec"), namespace)
        if entry_point is not None:
            check, candidate = namespace.get("check"), namespace.get(entry_point)
            if not callable(check) or not callable(candidate):
                missing = entry_point if not callable(candidate) else "check"
                return verdict("failed", f"NameError: the program defines no function {missing!r}")
            if guard is not None:
                guard.verify(namespace, check, candidate)
                wrapped = guard.wrap(candidate)
            check(candidate if guard is None else wrapped)
            if guard is not None:
                guard.verify(namespace, check, candidate)
    except CpuTimeLimit:
        return verdict("timed_out", "CPU time limit reached")
    except MemoryError:
        return verdict("out_of_memory", "MemoryError: out of memory")
    except StrictViolation as exc:
        return verdict("failed", f"strict mode: {exc}")
    except BaseException as exc:
        return verdict("failed", _describe(exc))
    return verdict("passed", "")


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        tb, line = exc.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<sample>":
                line = tb.tb_lineno
            tb = tb.tb_next
        if line is not None:
            text += f" (line {line})"
    except BaseException:
        text = "an exception that cannot be described"
    return text[:_DETAIL_CHARS]


def run_child(server: ForkServer, job_read: int, fds: tuple[int, int, int], nonce: str) -> NoReturn:
    """The forked child: confine itself, read its job, run it and report; never returns.

    Args:
        server: the fork server it was forked from (its folder, limits and prepared layers).
        job_read: the pipe the job arrives on.
        fds: the sample's stdout and stderr files, and the pipe its report goes to.
        nonce: the token the report must carry, so a sample cannot forge one.
    """
    out_fd, err_fd, write_end = fds
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.setsid()
    os.chdir(server.folder)
    apply_limits(server.limits, server.nproc_enforced())
    if server.landlock is not None:
        server.landlock.apply(server.folder)
        server.landlock.close()
    if server.seccomp is not None:
        server.seccomp.install()
    chunks = []
    while chunk := os.read(job_read, 1 << 16):
        chunks.append(chunk)
    if not chunks:  # the server stopped before handing over a job
        os._exit(0)
    job = _loads(b"".join(chunks))
    me = os.getpid()
    random.seed(0)
    signal.signal(signal.SIGPROF, cpu_time_up)
    signal.setitimer(signal.ITIMER_PROF, server.limits["cpu_seconds"])
    record = execute(job["source"], job.get("entry_point"), server.guard)
    if os.getpid() != me:  # a process the sample forked: only the sample itself reports
        os._exit(0)
    signal.setitimer(signal.ITIMER_PROF, 0)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    record["nonce"] = nonce
    try:
        data = ("\n" + _dumps(record) + "\n").encode()[:RECORD_BYTES]
    except BaseException:
        data = (
            "\n" + _dumps({"verdict": "failed", "detail": "unreportable", "nonce": nonce}) + "\n"
        ).encode()
    _write(write_end, data)
    os._exit(0)


def apply_limits(lim: dict[str, Any], nproc_enforced: bool) -> None:
    """Set the sample's resource limits (CPU, memory, file size, open files, processes)."""
    cpu = math.ceil(lim["cpu_seconds"]) + 1  # the hard kill; the itimer gives the exact limit
    pairs = [
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, lim["memory_bytes"]),
        (resource.RLIMIT_FSIZE, lim["file_size_bytes"]),
        (resource.RLIMIT_NOFILE, lim["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ]
    if lim["processes"] > 1 and nproc_enforced:
        pairs.append((resource.RLIMIT_NPROC, lim["processes"] + 2))  # + the server and its parent
    for which, value in pairs:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails instead of killing
