"""What the sandbox runs and what comes back: a program, its limits, its verdict and outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from alignlab.core.config import option


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
