"""The seccomp filters for sandbox samples, as classic BPF built by hand.

Denied calls fail with EPERM, so Python raises PermissionError and the sample fails
rather than dies: exec, new processes (unless allowed), sockets, namespaces, mounts,
ptrace and process_vm_*, BPF, perf, keyrings, io_uring, module loading, reboot, swap,
``TIOCSTI``, leaving the session or process group. ``clone3`` answers ENOSYS so the C
library falls back to ``clone``, whose flags the filter can read. Other architectures
than x86_64 and aarch64 get no filter.

The rules come in two filters, which the kernel applies together: the fork server
installs the first, everything but new processes and sessions, once for itself and
every child it forks; each child adds the second, a few instructions that forbid new
processes (unless allowed) and leaving its session, so a child pays for checking and
compiling a small filter instead of the whole one.

libseccomp's Python bindings would build the same programs, but they are not on PyPI
(only in distribution packages) and need a compiled extension; a child would still
install the result with the same ``prctl`` call.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

from alignlab.code.sandbox.namespaces import checked, libc

_PR_SET_SECCOMP = 22
_CLONE_THREAD = 0x00010000
_CLONE_NEW_ANY = 0x7E020000  # every CLONE_NEW* flag clone() accepts
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Denied outright, per architecture (x86_64, aarch64 numbers).
_DENIED = {
    "execve": (59, 221),
    "execveat": (322, 281),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "unshare": (272, 97),
    "setns": (308, 268),
    "socket": (41, 198),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "userfaultfd": (323, 282),
    "open_by_handle_at": (304, 265),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
}
_SESSION = {"setsid": (112, 157), "setpgid": (109, 154)}  # denied in the child, once it has its own
_FORK_ONLY = {"fork": 57, "vfork": 58}  # x86_64 only: aarch64 forks through clone
_CLONE, _CLONE3, _IOCTL = (56, 220), 435, (16, 29)
_TIOCSTI = 0x5412

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_KILL = 0x7FFF0000, 0x80000000


def _ret_errno(code: int) -> int:
    return 0x00050000 | code


def seccomp_programs(allow_fork: bool) -> tuple[bytes, bytes] | None:
    """The fork server's and each child's classic-BPF filters for this machine, or None if unknown.

    Denied calls fail with EPERM (so Python raises PermissionError); ``clone3`` fails with
    ENOSYS so the C library falls back to ``clone``, whose flags the filter can inspect.

    Args:
        allow_fork: let samples start new processes (threads are always allowed).
    """
    arch = platform.machine()
    if sys.platform != "linux" or arch not in _AUDIT_ARCH:
        return None
    column = 0 if arch == "x86_64" else 1
    eperm = _ret_errno(errno.EPERM)
    start: list[tuple[int, int, int, int]] = [
        (_LD_ABS, 0, 0, 4),
        (_JEQ, 1, 0, _AUDIT_ARCH[arch]),
        (_RET, 0, 0, _RET_KILL),
        (_LD_ABS, 0, 0, 0),
    ]
    if arch == "x86_64":  # the x32 ABI would reach the same calls under other numbers
        start += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, eperm)]
    server = list(start)
    for number in (numbers[column] for numbers in _DENIED.values()):
        server += [(_JEQ, 0, 1, number), (_RET, 0, 0, eperm)]
    server += [(_JEQ, 0, 1, _CLONE3), (_RET, 0, 0, _ret_errno(errno.ENOSYS))]
    # ioctl(fd, TIOCSTI) pushes input into a terminal: a classic escape.
    server += [(_JEQ, 0, 4, _IOCTL[column]), (_LD_ABS, 0, 0, 24), (_JEQ, 0, 1, _TIOCSTI)]
    server += [(_RET, 0, 0, eperm), (_RET, 0, 0, _RET_ALLOW)]
    # clone: never a new namespace.
    server += [(_JEQ, 0, 3, _CLONE[column]), (_LD_ABS, 0, 0, 16), (_JSET, 0, 1, _CLONE_NEW_ANY)]
    server += [(_RET, 0, 0, eperm), (_RET, 0, 0, _RET_ALLOW)]
    child = list(start)
    denied = [numbers[column] for numbers in _SESSION.values()]
    if not allow_fork and arch == "x86_64":
        denied += list(_FORK_ONLY.values())
    for number in denied:
        child += [(_JEQ, 0, 1, number), (_RET, 0, 0, eperm)]
    if not allow_fork:  # clone: only threads
        child += [(_JEQ, 0, 3, _CLONE[column]), (_LD_ABS, 0, 0, 16), (_JSET, 1, 0, _CLONE_THREAD)]
        child += [(_RET, 0, 0, eperm)]
    child += [(_RET, 0, 0, _RET_ALLOW)]
    return _assemble(server), _assemble(child)


def _assemble(program: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in program)


class SeccompFilter:
    """A filter from :func:`seccomp_programs`, laid out once so a process installs it in one call.

    Args:
        program: the BPF program.
    """

    def __init__(self, program: bytes) -> None:
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(self._buffer))

    def install(self) -> None:
        """Install the filter on this process for good.

        Raises:
            OSError: the kernel refused.
        """
        checked(libc().prctl(_PR_SET_SECCOMP, 2, self._fprog, 0, 0))
