"""The inside of the sandbox: a worker process confines itself before untrusted work.

A worker (``blocks.function_worker``, ``blocks.document_worker``) is started by
:mod:`blocks.sandbox` with a :class:`Plan` on its command line and calls :func:`apply`
first thing, before it reads its request. Layers, in order, each used when the plan asks
for it and the platform offers it (a layer in ``plan.require`` that cannot be applied
ends the process with :data:`EXIT_UNCONFINED` instead of running unconfined):

1. ``cgroup``: the process joins the cgroups the parent prepared (process count and
   memory of the whole tree; the parent kills the tree through them).
2. ``namespaces``: new user, PID, IPC (and network, unless allowed) namespaces. The
   process forks twice: the *keeper* stays outside and mirrors the exit status; the
   *init* (PID 1 inside) waits for the *work* process, which runs the untrusted code.
   When init exits, the kernel kills everything left in the namespace, so nothing the
   code spawns (``setsid`` and double forks included) outlives it. The keeper gets
   SIGTERM when its parent dies, and kills init then.
3. ``user``: without namespaces, a root parent switches to an unprivileged user.
4. ``landlock``: read/execute beneath the Python installation and stepwell's packages,
   full access beneath the work directory only; no TCP, no signals outside.
5. ``rlimits``: memory, CPU time, processes, file size, open files; no core dumps.

The parent-death signal of the work process is SIGKILL, so a keeper or init that dies
takes it along.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from dataclasses import asdict, field
from typing import Any

from engine.contracts.frozen import record

EXIT_UNCONFINED = 71
ARG = "--sandbox"
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET, _CLONE_NEWIPC = (
    0x10000000, 0x20000000, 0x40000000, 0x08000000)
MB = 1024 * 1024


@record
class Plan:
    """What a worker applies to itself (built by :mod:`blocks.sandbox`).

    Attributes:
        workdir: directory to work in (None: stay where started).
        read_paths / list_paths / write_paths: Landlock rules (see
            :func:`blocks.landlock.restrict`).
        landlock: restrict file, network and signal access.
        namespaces: run in new user/PID/IPC namespaces.
        network: keep the network (no network namespace; TCP allowed by Landlock).
        user: ``(uid, gid)`` to switch to when namespaces are not used and we are root.
        cgroups: ``cgroup.procs`` files to join.
        limits: rlimit values by name (``memory_mb``, ``cpu_seconds``, ``processes``,
            ``file_size_mb``, ``open_files``); None or missing: unchanged.
        require: layers that must apply.
    """

    workdir: str | None = None
    read_paths: tuple[str, ...] = ()
    list_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    landlock: bool = False
    namespaces: bool = False
    network: bool = True
    user: tuple[int, int] | None = None
    cgroups: tuple[str, ...] = ()
    limits: dict[str, int | None] = field(default_factory=dict)
    require: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The plan as one JSON argument."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan from :meth:`to_json`."""
        raw: dict[str, Any] = json.loads(text)
        for key in ("read_paths", "list_paths", "write_paths", "cgroups", "require"):
            raw[key] = tuple(raw.get(key) or ())
        raw["user"] = tuple(raw["user"]) if raw.get("user") else None
        return cls(**raw)


class Unconfined(RuntimeError):
    """A required layer could not be applied."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _pdeathsig(sig: int) -> None:
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _join_cgroups(paths: tuple[str, ...]) -> bool:
    for procs in paths:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    return bool(paths)


def _unshare(network: bool) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWUSER | _CLONE_NEWPID | _CLONE_NEWIPC | (0 if network else _CLONE_NEWNET)
    libc = _libc()
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1\n")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1\n")


def _mirror(pid: int, *, is_init: bool) -> None:
    """Wait for ``pid`` and end this process the way it ended (never returns)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            os._exit(EXIT_UNCONFINED)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if not is_init:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    code = os.WEXITSTATUS(status)
    if not is_init and 128 < code <= 128 + 64:
        sig = code - 128
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(code)


def _enter_namespaces(network: bool) -> None:
    """Unshare, then fork keeper -> init -> work; only the work process returns."""
    _pdeathsig(signal.SIGTERM)
    if os.getppid() == 1:
        os._exit(EXIT_UNCONFINED)  # the parent died before the signal was armed
    _unshare(network)
    init = os.fork()
    if init:
        def stop(_sig: int, _frame: Any) -> None:
            try:
                os.kill(init, signal.SIGKILL)
            finally:
                os._exit(128 + signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        _mirror(init, is_init=False)
    _pdeathsig(signal.SIGKILL)  # init dies with the keeper, and the namespace with init
    work = os.fork()
    if work:
        _mirror(work, is_init=True)


def _switch_user(user: tuple[int, int]) -> None:
    os.setgroups([])
    os.setgid(user[1])
    os.setuid(user[0])


def _set_limits(limits: dict[str, int | None], *, processes: bool) -> None:
    def cap(kind: int, value: int) -> None:
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):  # a limit this platform does not take (macOS: AS)
            if sys.platform.startswith("linux"):
                raise

    cap(resource.RLIMIT_CORE, 0)
    if limits.get("memory_mb"):
        cap(resource.RLIMIT_AS, int(limits["memory_mb"] or 0) * MB)
    if limits.get("cpu_seconds"):
        seconds = int(limits["cpu_seconds"] or 0)
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    if limits.get("file_size_mb"):
        cap(resource.RLIMIT_FSIZE, int(limits["file_size_mb"] or 0) * MB)
    if limits.get("open_files"):
        cap(resource.RLIMIT_NOFILE, int(limits["open_files"] or 0))
    if processes and limits.get("processes"):
        cap(resource.RLIMIT_NPROC, int(limits["processes"] or 0))


def _layer(name: str, plan: Plan, applied: list[str], action: Any) -> None:
    try:
        if action() is not False:
            applied.append(name)
    except (OSError, RuntimeError, ValueError) as exc:
        if name in plan.require:
            raise Unconfined(f"the {name} layer of the sandbox failed: {exc}") from exc


def apply(plan: Plan) -> list[str]:
    """Confine this process as ``plan`` says (see the module docstring).

    Returns:
        The layers applied, in order (``cgroup``, ``namespaces``, ``user``, ``landlock``,
        ``rlimits``).

    Raises:
        Unconfined: a required layer could not be applied.
    """
    applied: list[str] = []
    if plan.cgroups:
        _layer("cgroup", plan, applied, lambda: _join_cgroups(plan.cgroups))
    if plan.namespaces:
        _layer("namespaces", plan, applied, lambda: _enter_namespaces(plan.network))
    _pdeathsig(signal.SIGKILL)
    if plan.user is not None and "namespaces" not in applied and os.getuid() == 0:
        user = plan.user
        _layer("user", plan, applied, lambda: _switch_user(user))
    if plan.workdir:
        os.chdir(plan.workdir)
    if plan.landlock:
        from blocks import landlock

        _layer("landlock", plan, applied, lambda: landlock.restrict(
            read_paths=plan.read_paths, list_paths=plan.list_paths,
            write_paths=plan.write_paths))
    per_user = "user" in applied or ("namespaces" in applied and os.getuid() != 0)
    _layer("rlimits", plan, applied, lambda: _set_limits(plan.limits, processes=per_user))
    missing = [name for name in plan.require if name not in applied]
    if missing:
        raise Unconfined(f"the sandbox layers {', '.join(missing)} are not available here")
    return applied


def apply_from_argv(argv: list[str]) -> list[str]:
    """Apply the plan given as ``--sandbox JSON`` in ``argv`` (none: nothing to apply).

    Ends the process with :data:`EXIT_UNCONFINED` and a one-line message on stderr when
    a required layer fails, so untrusted work never runs unconfined.
    """
    if ARG not in argv:
        return []
    plan = Plan.from_json(argv[argv.index(ARG) + 1])
    try:
        return apply(plan)
    except Unconfined as exc:
        sys.stderr.write(f"stepwell sandbox: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_UNCONFINED)


def probe() -> dict[str, Any]:
    """What this platform offers (run in a throwaway process: it unshares itself)."""
    from blocks import landlock

    found: dict[str, Any] = {"platform": sys.platform, "root": os.geteuid() == 0,
                             "landlock_abi": landlock.abi_version(), "namespaces": False}
    if sys.platform.startswith("linux"):
        try:
            _unshare(network=False)
            found["namespaces"] = True
        except OSError as exc:
            found["namespaces_error"] = str(exc)
    return found


if __name__ == "__main__":
    sys.stdout.write(json.dumps(probe()))
