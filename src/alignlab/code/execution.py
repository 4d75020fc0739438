"""Running one program inside a sample's child: the program, then ``check(entry_point)``.

Everything here runs in the confined child, after the limits and layers are in place;
the result is a ``{"verdict", "detail"}`` record for the fork server.
"""

from __future__ import annotations

import builtins
from typing import Any

from alignlab.code.strict import Guard, StrictViolation

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
