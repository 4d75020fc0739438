"""Kernel isolation for sandbox workers: namespaces, capabilities, and the isolation report.

Everything here talks to Linux through ``ctypes`` and the standard library, and every
layer is optional: each function reports whether the kernel granted it, and
:class:`Isolation` records what a worker actually achieved, so the sandbox can warn
about what it could not get instead of failing.

Per worker (once, at start): a user namespace (the worker holds no privilege outside
it), a network namespace (no interface but a loopback that is down: no network at all),
a mount namespace (the whole tree read-only, a private size-limited tmpfs on ``/tmp``)
and a PID namespace (the worker's fork server is its init, so it can kill every process
a sample left behind). Then, in the fork server, for every sample it forks: no new
privileges, no capabilities, a Landlock domain (read the Python installation and system
files, write only the samples' folder, no TCP, no signals or abstract sockets outside the
domain) and a seccomp filter (no exec, no sockets, no namespaces, mounts, ptrace, kernel
keyrings, BPF, io_uring or module loading), to which each child adds no new processes and
no new session; those two live in :mod:`alignlab.code.sandbox.landlock` and
:mod:`alignlab.code.sandbox.seccomp`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import stat
import struct
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from typing import Any

NOBODY = 65534

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x1, 0x2, 0x4, 0x4000, 0x40000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 1, 4, 24
_PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 38, 36
_SYS_MOUNT_SETATTR = 442


@dataclass
class Isolation:
    """The isolation one worker achieved, as reported by the worker itself.

    Attributes:
        platform: ``sys.platform`` of the worker.
        identity: who samples run as: ``"nobody"``, ``"root without capabilities"`` or ``"uid N"``.
        user_namespace: samples hold no privilege outside a user namespace of their own.
        network_namespace: samples see no network interface (no network at all).
        mount_namespace: the file tree is read-only and ``/tmp`` is a private tmpfs.
        pid_namespace: samples see no process outside the worker and none survives it.
        landlock_abi: the Landlock ABI used (0: none): writes only in the sample's folder.
        seccomp: the syscall filter is installed.
        limits: the resource limits applied to each sample.
        warnings: the layers that could not be had, in words.
        notes: facts worth knowing that are not missing layers (e.g. who samples run as).
    """

    platform: str = sys.platform
    identity: str = "unknown"
    user_namespace: bool = False
    network_namespace: bool = False
    mount_namespace: bool = False
    pid_namespace: bool = False
    landlock_abi: int = 0
    seccomp: bool = False
    limits: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Isolation:
        """Rebuild a report from :meth:`to_dict` output."""
        return cls(**data)


_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def checked(result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _prctl(option: int, arg: int = 0) -> int:
    return checked(libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), 0))


def set_parent_death_signal() -> None:
    """Have the kernel SIGKILL this process when its parent dies (no stranded workers)."""
    if sys.platform == "linux":
        _prctl(_PR_SET_PDEATHSIG, 9)


def become_subreaper() -> bool:
    """Adopt orphaned descendants, so a worker without a PID namespace can still reap them."""
    try:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        return False
    return True


def _unshare(flags: int) -> bool:
    try:
        checked(libc().unshare(flags))
    except OSError:
        return False
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def readable_by_others(paths: list[str]) -> bool:
    """Whether an unprivileged user could read these folders (every ancestor searchable)."""
    for path in paths:
        current = os.path.realpath(path)
        if not os.stat(current).st_mode & stat.S_IROTH:
            return False
        while True:
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return False
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return True


def _can_unshare_user() -> bool:
    # Try in a throwaway child: a failure after dropping root could not be undone here.
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _unshare(CLONE_NEWUSER) else 1)
    return os.waitpid(pid, 0)[1] == 0


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    # Changing uid makes the process undumpable, which hides /proc/self/uid_map from it.
    _prctl(_PR_SET_DUMPABLE, 1)


def enter_worker_namespaces(report: Isolation, tmp_bytes: int) -> None:
    """Move this (worker) process into new user, network, mount and PID namespaces.

    Runs once per worker, before it forks its fork server. Each namespace the kernel
    refuses is left out and noted in ``report.warnings``. After the PID namespace is
    entered, this process's *next* child becomes that namespace's init.

    Args:
        report: filled in with what was achieved.
        tmp_bytes: size of the private tmpfs mounted on ``/tmp``.
    """
    if sys.platform != "linux":
        report.identity = f"uid {os.geteuid()}"
        report.warnings.append(f"no kernel isolation on {sys.platform}: only resource limits apply")
        return
    root = os.geteuid() == 0
    python_dirs = [sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"]]
    to_nobody = root and readable_by_others(python_dirs)
    if root and not to_nobody:
        report.notes.append(
            "the Python installation is not readable by an unprivileged user, so samples run as "
            "root without capabilities (writes are still confined by the read-only mount and Landlock)"
        )
    wanted = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID
    unshared = 0
    if _can_unshare_user():
        if to_nobody:
            _drop_to_nobody()
        uid, gid = os.geteuid(), os.getegid()
        if _unshare(CLONE_NEWUSER | wanted):
            unshared = wanted
            report.user_namespace = True
        else:
            report.user_namespace = _unshare(CLONE_NEWUSER)
        if report.user_namespace:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
    else:
        report.warnings.append("the kernel refuses user namespaces")
    if report.user_namespace or root:
        for flag in (CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID):
            if not unshared & flag and _unshare(flag):
                unshared |= flag
    report.network_namespace = bool(unshared & CLONE_NEWNET)
    report.pid_namespace = bool(unshared & CLONE_NEWPID)
    if unshared & CLONE_NEWNS:
        report.mount_namespace = _private_read_only_tree(tmp_bytes)
    if to_nobody and not report.user_namespace:
        _drop_to_nobody()
    report.identity = _identity(root, report.user_namespace, to_nobody)
    for flag, name in ((CLONE_NEWNET, "network"), (CLONE_NEWNS, "mount"), (CLONE_NEWPID, "PID")):
        if not unshared & flag:
            report.warnings.append(f"no {name} namespace: the kernel refused it")
    if unshared & CLONE_NEWNS and not report.mount_namespace:
        report.warnings.append("mount namespace without a read-only tree: the kernel refused the remount")


def _identity(root: bool, userns: bool, to_nobody: bool) -> str:
    if to_nobody:
        return "nobody"
    if root:
        return "root without capabilities"
    return f"uid {os.geteuid()}" + (" (namespaced, without capabilities)" if userns else "")


def _private_read_only_tree(tmp_bytes: int) -> bool:
    c = libc()
    try:
        checked(c.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None))
        attr = struct.pack("QQQQ", _MS_RDONLY, 0, 0, 0)  # struct mount_attr: attr_set = RDONLY
        checked(c.syscall(_SYS_MOUNT_SETATTR, -100, b"/", 0x8000, attr, len(attr)))  # AT_RECURSIVE
        options = f"size={tmp_bytes},mode=0700".encode()
        checked(c.mount(b"tmpfs", b"/tmp", b"tmpfs", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), options))
    except OSError:
        return False
    return True


def drop_capabilities() -> None:
    """Drop every capability, from the bounding set too, so no later exec regains one."""
    if sys.platform != "linux":
        return
    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # past the last capability this kernel knows
                break
            if exc.errno == errno.EPERM:  # no CAP_SETPCAP: nothing to drop
                break
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two empty {effective, permitted, inheritable} sets
    number = {"x86_64": 126, "aarch64": 91}.get(platform.machine())
    if number is not None:
        with contextlib.suppress(OSError):
            checked(libc().syscall(number, header, data))


def no_new_privileges() -> bool:
    """Forbid gaining privileges through exec (required by Landlock and seccomp)."""
    try:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    except (OSError, AttributeError):
        return False
    return True
