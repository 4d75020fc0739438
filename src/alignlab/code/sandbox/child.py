"""The sample's child process: its limits and seccomp, the program, then ``check(entry_point)``.

:func:`run_child` runs in the process the fork server forks for each sample, with the job
already in memory and inside the Landlock domain the server entered: it applies the
resource limits and the seccomp filter, runs the program (:func:`execute`) and writes a
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
_dumps, _write = json.dumps, os.write  # kept before any sample can patch them

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


def run_child(
    server: ForkServer, source: str, entry_point: str | None, write_end: int, nonce: str
) -> NoReturn:
    """The forked child: confine itself, run its job and report; never returns.

    Args:
        server: the fork server it was forked from (its output files, limits and seccomp filter).
        source: the program.
        entry_point: the function ``check`` is called with, or None.
        write_end: the pipe its report goes to.
        nonce: the token the report must carry, so a sample cannot forge one.
    """
    os.dup2(server.null, 0)
    os.dup2(server.outputs[0][0], 1)
    os.dup2(server.outputs[1][0], 2)
    for fd in server.private:  # the harness's pipes, the server's ends of the output files
        os.close(fd)
    with contextlib.suppress(OSError):
        os.setsid()
    apply_limits(server.rlimits)
    if server.seccomp is not None:
        server.seccomp.install()
    me = os.getpid()
    random.seed(0)
    signal.setitimer(signal.ITIMER_PROF, server.limits["cpu_seconds"])  # the handler is inherited
    record = execute(source, entry_point, server.guard)
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


def resource_limits(lim: dict[str, Any], nproc_enforced: bool) -> list[tuple[int, int]]:
    """The sample's resource limits (CPU, memory, file size, open files, processes), worked out once."""
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
    return pairs


def prepare_signals() -> None:
    """In the fork server, for every child it forks: the CPU-time handler, and a too-large
    write that fails instead of killing (dispositions survive fork; interval timers do not)."""
    signal.signal(signal.SIGPROF, cpu_time_up)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def apply_limits(pairs: list[tuple[int, int]]) -> None:
    """Set the limits from :func:`resource_limits` on this process (a sample's child)."""
    for which, value in pairs:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
