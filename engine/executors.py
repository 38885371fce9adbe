"""Where block attempts execute: in the run's process (``local``) or on a Dask cluster.

The runner drives every run in the process that owns it: it schedules, persists each
transition and decides retries. An executor only changes where one *attempt* of a
block runs. ``local`` (the default, no executor object at all) awaits the handler in the
runner's event loop, exactly as before. :class:`DaskExecutor` (``--executor
dask://HOST:PORT``) sends the attempt, with its inputs and context, to a Dask
``distributed`` cluster and awaits its outcome; the runner persists the result exactly
as for a local attempt. A for_each's items are separate steps, so their attempts spread
over the cluster's workers.

Which blocks go to the cluster: the ones that do work (function code, document blocks,
api_call, model calls), i.e. task-role blocks that are not containers, sentinels or pure
control logic (their type sets ``inline``). Control blocks stay in the driver: they are
microseconds of CPU that decide what runs next.

A Dask worker lost in the middle of an attempt (its process died, the connection
dropped) fails the attempt with a transient ``EXECUTOR_WORKER_LOST`` error, so the step
follows its retry policy. A lost *scheduler* is not a step failure and spends no retry:
the client waits for it to come back (``CONNECT_TIMEOUT_S``) and sends the attempt
again; when the client gives up, the attempt raises :class:`ExecutorLostError`, which
stops the run part-way (its completed steps are saved; it stays resumable). Dask retries a task whose worker died on its own up to the
scheduler's ``distributed.scheduler.allowed-failures`` (3 by default) before reporting
it; set it to 0 to hand every loss to stepwell's retry policy at once.

Under a shared server's code policy (``stepwell worker --shared --executor dask://``)
the attempt carries the policy (a service of its context) and its run's environment
(the organization's declared secrets) to the Dask worker, where the function block
applies them as it would here: ``code`` runs in a confined worker process started by
the Dask worker, ``python:`` references off the allowlist are refused. What confinement
guarantees there is what the Dask worker's machine offers. Dask itself authenticates
nobody: whoever reaches the scheduler can run code on its workers and read what is
sent, so keep it on a private network, or use ``dask+tls://``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol

from engine.attempts import Outcome, error_info, run_attempt
from engine.contracts.blocks import BlockContext, BlockRole
from engine.contracts.errors import StepwellError, TransientError, UsageError
from engine.contracts.logs import LogEntry, StepLog

if TYPE_CHECKING:
    from engine.compiled import Node
    from engine.scheduler import Task

#: Seconds to wait for the Dask scheduler when connecting (and, once connected, for it
#: to come back after the connection dropped, before the client gives up).
CONNECT_TIMEOUT_S = 5.0
#: Times one attempt is sent again after the scheduler dropped it (no retry spent).
RESEND_LIMIT = 3


class ExecutorLostError(StepwellError):
    """The executor itself is gone (the Dask client lost its scheduler for good): not a
    failure of the step, so no retry is spent. The run stops part-way, resumable; the
    message names the scheduler and what to do."""

    def __init__(self, message: str, *, address: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.run_id = run_id


class AttemptExecutor(Protocol):
    """Runs attempts of some blocks somewhere else than the run's event loop."""

    def takes(self, node: Node) -> bool:
        """True when this executor runs the attempts of ``node``."""
        ...

    async def attempt(self, task: Task, ctx: BlockContext) -> Outcome:
        """Run one attempt of ``task`` and return its outcome (never raises for a
        failed attempt: the failure is the outcome)."""
        ...


def parse_executor(spec: str | None) -> DaskExecutor | None:
    """The executor an ``--executor`` value names; None for ``local``.

    Args:
        spec: ``local`` (or None, or empty), or ``dask://HOST:PORT``
            (``dask+tls://HOST:PORT`` for a TLS scheduler).

    Returns:
        A :class:`DaskExecutor` (not connected yet), or None.

    Raises:
        UsageError: any other value.
    """
    if spec is None or spec in ("", "local"):
        return None
    for scheme, protocol in (("dask://", "tcp://"), ("dask+tls://", "tls://")):
        if spec.startswith(scheme) and len(spec) > len(scheme):
            _check_port(spec, spec[len(scheme):])
            return DaskExecutor(protocol + spec[len(scheme):])
    raise UsageError(f"--executor {spec!r} is not an executor. Use 'local' (the default) or "
                     "dask://HOST:PORT (a Dask distributed scheduler).")


def _check_port(spec: str, address: str) -> None:
    """Refuse a scheduler address whose port is not a number from 1 to 65535 (Dask would
    wait for it, then fail with a traceback)."""
    from urllib.parse import urlsplit

    try:
        port = urlsplit("//" + address).port
    except ValueError:
        port = 0
    if port == 0 or (port is None and address.split("/")[0].endswith(":")):
        bad = address.rpartition(":")[2]
        raise UsageError(f"--executor {spec!r} has the port {bad!r}, which is not a number "
                         "from 1 to 65535. Write dask://HOST:PORT (the scheduler's port, "
                         "8786 by default).")


def sends(node: Node) -> bool:
    """True when an executor runs ``node``'s attempts (see the module docstring)."""
    return (node.role is BlockRole.TASK and node.container is None
            and node.sentinel_of is None and not type(node.impl).inline)


class DaskExecutor:
    """Runs block attempts on a Dask ``distributed`` cluster.

    Args:
        address: the scheduler address (``tcp://HOST:PORT``).

    The client connects on :meth:`connect` (or on the first attempt), from a thread of
    its own, so an executor can be made inside or outside an event loop.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    @property
    def url(self) -> str:
        """The ``--executor`` value that names this executor."""
        return "dask+tls://" + self.address[6:] if self.address.startswith("tls://") \
            else "dask://" + self.address.removeprefix("tcp://")

    def connect(self) -> Any:
        """Connect to the scheduler (once) and return the ``distributed.Client``.

        Raises:
            UsageError: the scheduler cannot be reached; the message says how to fix it.
        """
        with self._lock:
            if self._client is None:
                self._client = _connect(self.address)
            return self._client

    def takes(self, node: Node) -> bool:
        """True when this executor runs the attempts of ``node``."""
        return sends(node)

    async def attempt(self, task: Task, ctx: BlockContext) -> Outcome:
        """Run one attempt of ``task`` on the cluster and return its outcome.

        Cancelling the caller cancels the Dask task. A lost worker is a transient
        failure (``EXECUTOR_WORKER_LOST``).
        """
        shipped = _shippable(ctx)
        resent = 0
        while True:
            client = self._client or await asyncio.to_thread(self.connect)
            try:
                outcome, written = await self._submit(client, task, shipped)
                break
            except Exception as exc:  # noqa: BLE001 - sorted below; none escapes raw
                if not _scheduler_lost(client, exc):  # the worker was lost: transient
                    lost = TransientError(
                        f"the Dask worker running block {task.node.id!r} was lost "
                        f"({type(exc).__name__}: {exc}); the step is retried by its retry "
                        "policy.", code="EXECUTOR_WORKER_LOST")
                    return error_info(lost, None), None
                resent += 1
                if resent > RESEND_LIMIT or not await _reconnected(client):
                    raise self._lost(ctx.run_id, exc) from None
        if ctx.log is not None:  # what the attempt wrote on the worker joins its log here
            for entry in written:
                ctx.log.write(entry.stream, entry.message, level=entry.level,
                              logger=entry.logger, at=entry.at)
        return outcome  # type: ignore[no-any-return]

    async def _submit(self, client: Any, task: Task, shipped: BlockContext) -> Any:
        """Send one attempt and await its result (raises what the future raises)."""
        future = client.submit(remote_attempt, task, shipped, pure=False,
                               key=f"stepwell-{task.step_id}-{uuid.uuid4().hex[:12]}")
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        future.add_done_callback(lambda _f: loop.call_soon_threadsafe(done.set))
        try:
            await done.wait()
        except BaseException:
            with suppress(Exception):  # a closed client cannot cancel: nothing runs anyway
                future.cancel()
            raise
        return future.result()

    def _lost(self, run_id: str | None, exc: BaseException) -> ExecutorLostError:
        """The error for a scheduler the client could not get back; forgets the client so
        that a later attempt connects again."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with suppress(Exception):
                client.close()
        run = f"run {run_id}" if run_id else "the run"
        resume = f"`stepwell runs resume {run_id}`" if run_id else "`stepwell runs resume`"
        return ExecutorLostError(
            f"Lost the Dask scheduler at {self.address} ({type(exc).__name__}); {run} "
            f"stopped part-way with its completed steps saved and no retries spent. Restart "
            f"the scheduler and its workers (`dask scheduler`, `dask worker ADDRESS`), then "
            f"continue it with {resume} or a `stepwell worker --executor {self.url}`.",
            address=self.address, run_id=run_id)

    def close(self) -> None:
        """Disconnect from the scheduler (the cluster keeps running)."""
        with self._lock:
            if self._client is not None:
                with suppress(Exception):  # already closed after losing its scheduler
                    self._client.close()
                self._client = None


def remote_attempt(task: Task, ctx: BlockContext) -> tuple[Outcome, tuple[LogEntry, ...]]:
    """What a Dask worker runs: one attempt, in an event loop of its own, with a log of
    its own; returns the outcome and what the attempt wrote."""
    from dataclasses import replace

    log = StepLog()
    outcome = asyncio.run(run_attempt(task, replace(ctx, log=log)))
    return outcome, log.entries()


def _shippable(ctx: BlockContext) -> BlockContext:
    """The context as sent to a worker: the same, without the attempt's local log (the
    worker writes to a log of its own, sent back with the outcome)."""
    if ctx.log is None:
        return ctx
    from dataclasses import replace

    return replace(ctx, log=None)


def _scheduler_lost(client: Any, exc: BaseException) -> bool:
    """True when ``exc`` comes from losing the scheduler, not a Dask worker: the client
    is closed or reconnecting, or the scheduler connection dropped the future (a lost
    worker is reported as ``KilledWorker`` or a worker-side error instead)."""
    from distributed.client import ClosedClientError
    from distributed.comm.core import CommClosedError

    if isinstance(exc, ClosedClientError | CommClosedError | concurrent.futures.CancelledError):
        return True
    return getattr(client, "status", "running") != "running"


async def _reconnected(client: Any) -> bool:
    """Wait for ``client`` to get its scheduler back; False when it gives up (closed)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + 2.0
    while time.monotonic() < deadline:
        status = getattr(client, "status", "closed")
        if status == "running":
            return True
        if status in ("closing", "closed", "failed"):
            return False
        await asyncio.sleep(0.1)
    return False


class _NoReconnectNoise(logging.Filter):
    """Drop distributed's 'Failed to reconnect to scheduler' log line: the executor
    reports a lost scheduler itself, in one line naming the fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to reconnect to scheduler")


def _connect(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--executor dask://... needs the dask extra: "
                         "pip install 'stepwell[distributed]'.") from None
    noise = logging.getLogger("distributed.client")
    if not any(isinstance(f, _NoReconnectNoise) for f in noise.filters):
        noise.addFilter(_NoReconnectNoise())
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(
            f"cannot reach the Dask scheduler at {address} ({exc}). Start it "
            "(`dask scheduler`, then `dask worker ADDRESS`), or fix --executor "
            "dask://HOST:PORT.") from None

