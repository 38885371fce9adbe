"""The host side of the sandbox: what the platform offers, cgroups, and the worker registry.

* :func:`platform_report` probes once per process (in a throwaway child, since probing
  namespaces means entering them) and says which isolation layers this machine offers;
  :meth:`PlatformReport.guarantees` turns that into the promises docs/security.md makes.
* :class:`Cgroup`: a per-worker cgroup (v1 ``pids`` and ``memory`` hierarchies, when
  this process may create them): a process count and a memory ceiling for the whole
  tree, and a way to kill every member.
* :class:`WorkerRegistry`: one small file per live worker under a private directory, so
  the workers of a host that died are found and killed on the next start, and this
  host's on shutdown. A worker is identified by pid *and* start time, so a recycled pid
  is never killed.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from engine.contracts.frozen import record

_V1_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024


@record
class PlatformReport:
    """Isolation layers this machine offers to workers."""

    system: str
    root: bool
    landlock_abi: int
    namespaces: bool
    cgroups: bool
    worker_user: tuple[int, int] | None

    def guarantees(self) -> dict[str, bool]:
        """Which promises hold for confined workers here.

        ``filesystem``: only the Python installation, stepwell's packages and the work
        directory are readable. ``network``: no network at all (a network namespace).
        ``tree_kill``: everything a worker spawns dies with it. ``signals``: a worker
        cannot signal processes outside its sandbox. ``processes``: the process count is
        bounded. ``memory``: the address space is bounded (by rlimit; Linux enforces it,
        macOS does not).
        """
        return {
            "filesystem": self.landlock_abi >= 1,
            "network": self.namespaces,
            "tree_kill": self.namespaces or self.cgroups,
            "signals": self.namespaces or self.landlock_abi >= 6,
            "processes": self.cgroups or self.worker_user is not None
            or (self.namespaces and not self.root),
            "memory": self.system.startswith("linux"),
        }

    def describe(self) -> str:
        """One line for a start-up banner."""
        held = [name for name, ok in self.guarantees().items() if ok]
        lacking = [name for name, ok in self.guarantees().items() if not ok]
        layers = [f"landlock ABI {self.landlock_abi}" if self.landlock_abi else "",
                  "namespaces" if self.namespaces else "", "cgroups" if self.cgroups else "",
                  "separate user" if self.worker_user else ""]
        text = (f"worker sandbox: {', '.join(x for x in layers if x) or 'rlimits only'}; "
                f"guaranteed: {', '.join(held)}")
        return text + (f"; not guaranteed: {', '.join(lacking)}" if lacking else "")


def readable_by_others(path: str) -> bool:
    """True when every directory above ``path`` lets other users through."""
    current = Path(path).resolve()
    for part in [current, *current.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def resolve_user(name: str | None) -> tuple[int, int] | None:
    """``(uid, gid)`` of the worker user when this process is root and that user can run
    this Python (``nobody`` by default); None otherwise."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwuid(int(name)) if name and name.isdigit() else pwd.getpwnam(
            name or "nobody")
    except KeyError:
        return None
    paths = [sys.base_prefix, sys.prefix, os.path.realpath(sys.executable)]
    if not all(readable_by_others(p) for p in paths):
        return None
    return entry.pw_uid, entry.pw_gid


@functools.lru_cache(maxsize=8)
def platform_report(user: str | None = None) -> PlatformReport:
    """Probe this machine (once per process and worker user)."""
    found: dict[str, Any] = {"landlock_abi": 0, "namespaces": False}
    if sys.platform.startswith("linux"):
        try:
            out = subprocess.run([sys.executable, "-P", "-m", "blocks.confine"],
                                 capture_output=True, timeout=30, check=False,
                                 cwd=str(Path(__file__).resolve().parent.parent))
            found.update(json.loads(out.stdout or b"{}"))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
    return PlatformReport(system=sys.platform, root=os.name == "posix" and os.geteuid() == 0,
                          landlock_abi=int(found.get("landlock_abi") or 0),
                          namespaces=bool(found.get("namespaces")),
                          cgroups=cgroups_available(), worker_user=resolve_user(user))


# ----------------------------------------------------------------------------- cgroups


def _own_v1_path(controller: str) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


@functools.lru_cache(maxsize=1)
def cgroups_available() -> bool:
    """True when this process may create v1 ``pids`` cgroups."""
    own = _own_v1_path("pids") if sys.platform.startswith("linux") else None
    if own is None:
        return False
    base = _V1_ROOT / "pids" / own.lstrip("/")
    return os.access(base, os.W_OK) and (base / "cgroup.procs").exists()


class Cgroup:
    """A worker's own cgroup in the v1 ``pids`` and ``memory`` hierarchies.

    Args:
        pids: most processes (and threads) of the tree.
        memory_mb: most memory of the tree (None: not limited).
    """

    CONTROLLERS = ("pids", "memory")

    def __init__(self, *, pids: int | None, memory_mb: int | None) -> None:
        self.dirs: list[Path] = []
        name = f"stepwell-worker-{uuid.uuid4().hex[:12]}"
        for controller in self.CONTROLLERS:
            own = _own_v1_path(controller)
            if own is None:
                continue
            path = _V1_ROOT / controller / own.lstrip("/") / name
            path.mkdir(mode=0o700)
            self.dirs.append(path)
            if controller == "pids" and pids:
                (path / "pids.max").write_text(str(pids))
            if controller == "memory" and memory_mb:
                (path / "memory.limit_in_bytes").write_text(str(memory_mb * MB))

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a worker writes its pid to."""
        return tuple(str(d / "cgroup.procs") for d in self.dirs)

    def kill_all(self) -> None:
        """SIGKILL every member, repeatedly, until the cgroups are empty (or 2 s pass)."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            pids = {int(p) for d in self.dirs for p in _read_lines(d / "cgroup.procs")}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and delete the cgroups."""
        self.kill_all()
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().split() if line]
    except OSError:
        return []


# ----------------------------------------------------------------------------- registry


def _start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` (Linux: field 22 of /proc/PID/stat), None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return text.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerRegistry:
    """Live workers, one file each, in a directory private to this user.

    Args:
        directory: where the files go (default: ``stepwell-workers-<uid>`` in the
            system temporary directory, mode 0700).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        default = Path(tempfile.gettempdir()) / f"stepwell-workers-{os.geteuid()}"
        self.directory = Path(directory) if directory else default
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def add(self, pid: int, *, cgroups: tuple[str, ...] = ()) -> None:
        """Record worker ``pid`` (started by this process)."""
        entry = {"pid": pid, "start": _start_ticks(pid), "host": os.getpid(),
                 "host_start": _start_ticks(os.getpid()), "cgroups": list(cgroups)}
        path = self.directory / f"{pid}.json"
        path.write_text(json.dumps(entry))
        path.chmod(0o600)

    def remove(self, pid: int) -> None:
        """Forget worker ``pid`` (it ended)."""
        (self.directory / f"{pid}.json").unlink(missing_ok=True)

    def reap(self, *, own: bool = False) -> list[int]:
        """Kill recorded workers whose host died (``own``: also this process's).

        Returns:
            The pids killed.
        """
        killed: list[int] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            host, mine = int(entry["host"]), int(entry["host"]) == os.getpid()
            host_gone = not _alive(host) or _start_ticks(host) != entry.get("host_start")
            if not (host_gone or (own and mine)):
                continue
            pid = int(entry["pid"])
            if _start_ticks(pid) == entry.get("start") and _alive(pid):
                kill_group(pid)
                killed.append(pid)
            for procs in entry.get("cgroups") or ():
                _empty_cgroup(Path(procs).parent)
            path.unlink(missing_ok=True)
        return killed


def _empty_cgroup(directory: Path) -> None:
    for pid in _read_lines(directory / "cgroup.procs"):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    try:
        directory.rmdir()
    except OSError:
        pass


def kill_group(pid: int) -> None:
    """SIGTERM the worker's group (a keeper kills its namespace), then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig == signal.SIGTERM:
            time.sleep(0.1)

