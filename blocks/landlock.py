"""Landlock (Linux 5.13+): a process restricts its own file, network and signal access.

Landlock is an unprivileged Linux security module: a process builds a *ruleset* naming
the accesses it wants to control, adds rules that allow some of them beneath given
paths, and applies it to itself for good (``landlock_restrict_self``). Children inherit
the restriction and can only narrow it further. There is no Python binding in the
standard library, so this module calls the three system calls through ``ctypes``.

:func:`abi_version` reports what the kernel supports (0: none). :func:`restrict` applies
a ruleset that allows reading (and executing) beneath ``read_paths``, full access beneath
``write_paths``, and nothing else on the file system; from ABI 4 it also forbids TCP
``bind``/``connect``, and from ABI 6 sending signals to, or connecting to abstract UNIX
sockets of, processes outside the sandbox. Accesses the running kernel does not know are
left out, so the same call works on every version (the result says what was enforced).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

from engine.contracts.frozen import record

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_AND_REMOVE = sum(1 << n for n in range(4, 13))  # remove dir/file, make char...sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64),
                ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@record
class Enforced:
    """What :func:`restrict` enforced: the ABI, and whether network/signals are scoped."""

    abi: int
    network: bool
    signals: bool


class LandlockError(OSError):
    """Landlock is unavailable, or a system call failed."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def abi_version() -> int:
    """The Landlock ABI of the running kernel (0 when Landlock is unavailable)."""
    libc = _libc()
    if libc is None:
        return 0
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(0, int(version))


def _fs_rights(abi: int) -> int:
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _MAKE_AND_REMOVE
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _add_path(libc: ctypes.CDLL, ruleset: int, path: str, allowed: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            allowed &= _FILE_ONLY
        attr = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(attr), 0) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def restrict(*, read_paths: Iterable[str], write_paths: Iterable[str] = (),
             list_paths: Iterable[str] = ()) -> Enforced:
    """Restrict this process (and its future children) for good.

    Args:
        read_paths: files and trees that may be read and executed.
        write_paths: trees with full access (read, write, create, remove).
        list_paths: directories whose entries may be listed, but whose files may not be
            opened unless another rule allows it (Python's import system lists the
            directories on ``sys.path``).

    Returns:
        What was enforced.

    Raises:
        LandlockError: the kernel has no Landlock, or a call failed.
    """
    libc = _libc()
    abi = abi_version()
    if libc is None or abi < 1:
        raise LandlockError(0, "Landlock is not available on this system")
    fs = _fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=fs,
                        handled_access_net=NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        scoped=SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for path in list_paths:
            _add_path(libc, ruleset, path, READ_DIR)
        for path in read_paths:
            _add_path(libc, ruleset, path, EXECUTE | READ_FILE | READ_DIR)
        for path in write_paths:
            _add_path(libc, ruleset, path, fs)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    return Enforced(abi=abi, network=abi >= 4, signals=abi >= 6)
