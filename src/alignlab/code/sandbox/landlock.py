"""Landlock for sandbox samples: read the Python installation and system folders, write only
the sample's own folder, no TCP, no signals or abstract Unix sockets outside the domain.

Landlock (Linux 5.13+) lets an unprivileged process restrict itself for good; each ABI
version adds rights (2: renames across folders, 3: truncation, 4: TCP, 5: device ioctls,
6: signal and abstract-socket scoping). The policy uses what the kernel offers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import struct
import sys
import sysconfig

from alignlab.code.sandbox.namespaces import checked, libc

_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD, _SYS_LANDLOCK_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_NET_TCP = 0b11  # BIND_TCP | CONNECT_TCP
_SCOPES = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL
_READ_ONLY_ROOTS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc", "/opt")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers (0: none)."""
    if sys.platform != "linux":
        return 0
    result = libc().syscall(_SYS_LANDLOCK_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(result))


def _fs_rights(abi: int) -> int:
    return _FS_BY_ABI.get(abi, (1 << 16) - 1)


class LandlockPolicy:
    """A Landlock policy prepared once per worker and applied to its fork server, whose
    children (the samples) inherit the domain.

    The folders samples may read are opened here (``O_PATH``) and added by file descriptor.

    Args:
        abi: the Landlock ABI to use (from :func:`landlock_abi`).
    """

    def __init__(self, abi: int) -> None:
        self.abi = abi
        self._handled = _fs_rights(abi)
        self._reads: list[tuple[int, bytes]] = []
        paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        paths |= {path for path in sysconfig.get_paths().values() if path}
        paths |= set(_READ_ONLY_ROOTS)
        read_dir = _FS_READ_FILE | _FS_READ_DIR
        for path in _outermost(paths):
            self._open(path, read_dir)
        for path in _DEVICES:
            self._open(path, _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE)
        self._attr = struct.pack(
            "QQQ", self._handled, _NET_TCP if abi >= 4 else 0, _SCOPES if abi >= 6 else 0
        )
        self._attr_size = 24 if abi >= 6 else 16 if abi >= 4 else 8

    def _open(self, path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        self._reads.append((fd, _rule(rights & self._handled, fd)))

    def apply(self, writable: str) -> None:
        """Restrict this process and its future children for good: read the prepared folders,
        write only under ``writable``, no TCP, no signals or abstract sockets outside.

        Raises:
            OSError: the kernel refused (the worker then fails to start).
        """
        syscall = libc().syscall
        ruleset = checked(syscall(_SYS_LANDLOCK_CREATE, self._attr, ctypes.c_size_t(self._attr_size), 0))
        try:
            own = os.open(writable, os.O_PATH | os.O_CLOEXEC)
            rules = [rule for _, rule in self._reads]
            rules.append(_rule(self._handled & ~_FS_EXECUTE, own))
            for rule in rules:
                checked(syscall(_SYS_LANDLOCK_ADD, ruleset, 1, rule, 0))
            os.close(own)
            checked(syscall(_SYS_LANDLOCK_RESTRICT, ruleset, 0))
        finally:
            os.close(ruleset)

    def close(self) -> None:
        """Close the prepared descriptors (once the policy is applied)."""
        for fd, _ in self._reads:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reads = []


def _outermost(paths: set[str]) -> list[str]:
    """The existing folders among ``paths`` that are not inside another one (one rule covers them)."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _rule(rights: int, fd: int) -> bytes:
    return struct.pack("=Qi", rights, fd)  # struct landlock_path_beneath_attr (packed)
