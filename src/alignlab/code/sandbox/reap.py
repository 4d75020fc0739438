"""After each sample: reap it under a wall-clock backstop, kill what it left running, empty its folder.

Used by the fork server (:mod:`alignlab.code.sandbox.forkserver`); standard library only, like it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import time


def wait(pid: int, deadline: float) -> tuple[int, resource.struct_rusage, bool]:
    """Reap the sample ``pid``, killing it at the wall-clock ``deadline`` (s); True if that happened."""
    killed = False
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


def sweep(pid: int, pid_namespace: bool, children: int | None) -> None:
    """Kill and reap everything the sample ``pid`` started, wherever it went.

    As init of its own pid namespace the server kills every other process in it; otherwise it
    kills the sample's process group and then, read from ``children`` (:func:`open_children`),
    any child that left the group.
    """
    if pid_namespace:
        try:
            os.kill(-1, signal.SIGKILL)  # as init: every other process in the namespace
        except ProcessLookupError:
            return  # none, not even an unreaped one: the usual case
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for _ in range(1000):
            left = listed(children)
            if not left:
                break
            for child in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            for child in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child, 0)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def empty(folder: str) -> bool:
    """Remove everything in ``folder`` (a sample may have locked its subfolders); False if that fails."""
    try:
        os.chmod(folder, 0o700)
        found, pending = [], [folder]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        os.chmod(entry.path, 0o700)
                        found.append(entry.path)
                        pending.append(entry.path)
                    else:
                        os.unlink(entry.path)
        for path in reversed(found):  # every folder after its parent, so children go first
            os.rmdir(path)
    except OSError:
        return False
    return True


def open_children() -> int | None:
    """A descriptor on this process's list of children (read again for each sample), or None."""
    try:
        return os.open(f"/proc/self/task/{os.getpid()}/children", os.O_RDONLY)
    except OSError:
        return None


def listed(handle: int | None) -> list[int]:
    """The pids ``handle`` (from :func:`open_children`) lists now."""
    if handle is None:
        return []
    try:
        return [int(pid) for pid in os.pread(handle, 1 << 16, 0).split()]
    except OSError:
        return []
