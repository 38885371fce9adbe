"""Run a worker module in a child process that can always be stopped, and bounded.

:func:`run_worker` starts ``python -m <module>``, writes one request on its stdin and
collects its stdout, under these rules (the worker side is :mod:`blocks.confine`):

* the child leads its own session; when the call ends (answer, timeout, cancellation or
  error) its whole process group is terminated (SIGTERM, which a namespace keeper turns
  into killing its namespace, then SIGKILL), and its cgroup emptied when it has one;
* stdout is read up to ``stdout_limit`` bytes (past that the child is killed and the
  outcome says so); stderr keeps only its last ``stderr_tail`` bytes, however much the
  child writes;
* stdout lines that start with :data:`LOG_FRAME` (``\\x1e``, which no JSON answer starts
  with) are log entries the child sends while it runs (a JSON list of
  :class:`~engine.contracts.logs.LogEntry` dicts): they are handed to the sink in
  :data:`LOG_SINK` as they arrive, and kept out of ``stdout``, so what a worker wrote
  before a timeout or a kill reaches the step's log;
* every live child is recorded in a :class:`~blocks.sandbox_host.WorkerRegistry`, so
  :func:`reap_workers` kills those of a host that died (call it at start) and the host's
  own (call it at shutdown);
* ``confine=True``: the child gets a minimal environment (what Python needs, plus
  ``env``), a fresh private temporary directory as its home and working directory
  (deleted afterwards), and every isolation layer the platform offers (Landlock,
  namespaces, cgroups, a separate user), applied by the child to itself before it reads
  the request. Layers the platform reported as available are required: if one fails,
  the child exits without running anything (``WorkerOutcome.unconfined``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from blocks.confine import ARG, EXIT_UNCONFINED, Plan
from blocks.sandbox_host import Cgroup, WorkerRegistry, platform_report
from engine.contracts.frozen import record
from engine.contracts.policy import WorkerLimits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: System files a confined Python may read (shared libraries, their cache, time zones).
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache",
               "/etc/localtime", "/dev/urandom", "/dev/random", "/dev/zero")
KILL_GRACE_S = 0.2
READ_CHUNK = 1024 * 1024
#: The first byte of a stdout line carrying log entries (see the module docstring).
LOG_FRAME = b"\x1e"
#: Where the log entries a worker of this context sends go (``blocks.log_capture
#: .add_entries`` bound to the step's log); None: they are dropped.
LOG_SINK: ContextVar[Callable[[object], None] | None] = ContextVar(
    "stepwell_worker_log_sink", default=None)
_REGISTRY: list[WorkerRegistry] = []


@record
class WorkerSpec:
    """How to start one worker.

    Attributes:
        module: the worker module (run with ``python -P -m``).
        confine: minimal environment, private directory, isolation layers.
        limits: rlimits (applied in every mode; None values are not limited).
        env: confined: variables added to the minimal environment (declared secrets);
            otherwise the whole environment (None: this process's).
        cwd: working directory when not confined (None: this process's).
        network: confined workers keep network access.
        user: the user a root host switches confined workers to (None: ``nobody``).
        stdout_limit: most stdout bytes read.
        stderr_tail: stderr bytes kept (the last ones).
    """

    module: str
    confine: bool = False
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    network: bool = False
    user: str | None = None
    stdout_limit: int = 64 * 1024 * 1024
    stderr_tail: int = 8 * 1024


@record
class WorkerOutcome:
    """How a worker ended.

    Attributes:
        stdout: what it wrote on stdout (at most ``stdout_limit`` bytes).
        stderr: the tail of its stderr, decoded.
        returncode: its exit status (negative: killed by that signal).
        timed_out: the timeout expired and it was killed.
        too_much_output: it wrote more than ``stdout_limit`` bytes and was killed.
        unconfined: a required isolation layer failed; nothing ran.
    """

    stdout: bytes
    stderr: str
    returncode: int | None
    timed_out: bool = False
    too_much_output: bool = False
    unconfined: bool = False


def registry() -> WorkerRegistry:
    """The registry of this process's workers."""
    if not _REGISTRY:
        _REGISTRY.append(WorkerRegistry())
    return _REGISTRY[0]


def reap_workers(*, own: bool = False) -> list[int]:
    """Kill workers whose host died (``own``: and this process's). Returns their pids."""
    return registry().reap(own=own)


def _limit_values(limits: WorkerLimits) -> dict[str, int | None]:
    return {"memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds,
            "processes": limits.processes, "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files}


def _read_paths() -> tuple[str, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                os.path.dirname(os.path.realpath(sys.executable))}
    packages = (str(PROJECT_ROOT / "blocks"), str(PROJECT_ROOT / "engine"))
    return (*sorted(prefixes), *packages, *SYSTEM_READ)


def minimal_env(workdir: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """What a confined Python needs, plus ``extra`` (the declared secrets)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": workdir, "TMPDIR": workdir, "PYTHONPATH": str(PROJECT_ROOT),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "PYTHONIOENCODING": "utf-8"}
    env.update(extra or {})
    return env


def _plan(spec: WorkerSpec, workdir: str | None, cgroup: Cgroup | None) -> Plan:
    limits = _limit_values(spec.limits)
    if not spec.confine:
        return Plan(limits=limits)
    report = platform_report(spec.user)
    require = ["rlimits"]
    if report.landlock_abi:
        require.append("landlock")
    if report.namespaces:
        require.append("namespaces")
    elif report.worker_user is not None:
        require.append("user")
    if cgroup is not None and cgroup.dirs:
        require.append("cgroup")
    return Plan(workdir=workdir, read_paths=_read_paths(), list_paths=(str(PROJECT_ROOT),),
                write_paths=(workdir or "", "/dev/null"), landlock=bool(report.landlock_abi),
                namespaces=report.namespaces, network=spec.network,
                user=report.worker_user, cgroups=cgroup.procs_files if cgroup else (),
                limits=limits, require=tuple(require))


def _prepare(spec: WorkerSpec) -> tuple[str | None, Cgroup | None]:
    if not spec.confine:
        return None, None
    workdir = tempfile.mkdtemp(prefix="stepwell-worker-")
    report = platform_report(spec.user)
    if report.worker_user is not None and not report.namespaces:
        os.chown(workdir, *report.worker_user)
    cgroup = None
    if report.cgroups:
        try:
            cgroup = Cgroup(pids=spec.limits.processes, memory_mb=spec.limits.memory_mb)
        except OSError:
            cgroup = None
    return workdir, cgroup


def _command(spec: WorkerSpec, plan: Plan) -> list[str]:
    flags = ["-P", "-s"] if spec.confine else ["-P"]
    return [sys.executable, *flags, "-m", spec.module, ARG, plan.to_json()]


def _environment(spec: WorkerSpec, workdir: str | None) -> dict[str, str]:
    if workdir is not None:
        return minimal_env(workdir, spec.env)
    env = dict(os.environ if spec.env is None else spec.env)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env


async def _feed(proc: Process, body: bytes) -> None:
    assert proc.stdin is not None
    try:
        await proc.stdin.send(body)
        await proc.stdin.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the worker died early; its exit status and stderr tell why


class _Collector:
    def __init__(self, spec: WorkerSpec, proc: Process) -> None:
        self.spec, self.proc = spec, proc
        self.out, self.err = bytearray(), bytearray()
        self.overflow = False
        self.sink = LOG_SINK.get()

    async def stdout(self, stream: ByteReceiveStream | None) -> None:
        while stream is not None and (chunk := await _receive(stream)):
            self.out.extend(chunk)
            self._frames()
            if len(self.out) > self.spec.stdout_limit:
                self.overflow = True
                del self.out[self.spec.stdout_limit:]
                terminate(self.proc.pid)
                return

    def _frames(self) -> None:
        """Hand the complete log frames at the start of ``out`` to the sink."""
        out = self.out
        while out[:1] == LOG_FRAME:
            end = out.find(b"\n")
            if end < 0:
                return
            frame = bytes(out[1:end])
            del out[:end + 1]
            if self.sink is not None:
                try:
                    entries = json.loads(frame)
                except ValueError:
                    continue
                self.sink(entries)

    async def stderr(self, stream: ByteReceiveStream | None) -> None:
        while stream is not None and (chunk := await _receive(stream)):
            self.err.extend(chunk)
            if len(self.err) > 2 * self.spec.stderr_tail:
                del self.err[:-self.spec.stderr_tail]


async def _receive(stream: ByteReceiveStream) -> bytes:
    """The next chunk (large reads: a flood costs few loop turns), b"" at the end."""
    try:
        return await stream.receive(READ_CHUNK)
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        return b""


def terminate(pid: int) -> None:
    """Stop worker ``pid`` and its process group (SIGTERM, then SIGKILL)."""
    _signal_group(pid, signal.SIGTERM)
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _stop(proc: Process, cgroup: Cgroup | None) -> None:
    """End the worker and anything left in its group or cgroup."""
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)  # a keeper kills its namespace on it
        with anyio.move_on_after(KILL_GRACE_S):
            await proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.remove()
    await proc.wait()


async def run_worker(spec: WorkerSpec, request: bytes, *,
                     timeout: float | None) -> WorkerOutcome:
    """Run ``spec.module`` on ``request`` (see the module docstring).

    Args:
        spec: how to start the worker.
        request: bytes written to its stdin (then closed).
        timeout: seconds before it is killed (None: no limit).

    Returns:
        The outcome; cancelling the caller kills the worker before the cancellation
        propagates.
    """
    workdir, cgroup = _prepare(spec)
    plan = _plan(spec, workdir, cgroup)
    proc = await anyio.open_process(
        _command(spec, plan), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=_environment(spec, workdir),
        cwd=workdir or spec.cwd, start_new_session=True)
    registry().add(proc.pid, cgroups=cgroup.procs_files if cgroup else ())
    collect = _Collector(spec, proc)
    try:
        with anyio.move_on_after(timeout) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, proc, request)
                tg.start_soon(collect.stdout, proc.stdout)
                tg.start_soon(collect.stderr, proc.stderr)
            await proc.wait()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(proc, cgroup)
            await proc.aclose()
            registry().remove(proc.pid)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
    return WorkerOutcome(stdout=bytes(collect.out),
                         stderr=bytes(collect.err[-spec.stderr_tail:]).decode(errors="replace"),
                         returncode=proc.returncode, timed_out=scope.cancelled_caught,
                         too_much_output=collect.overflow,
                         unconfined=proc.returncode == EXIT_UNCONFINED)
