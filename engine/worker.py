"""``stepwell worker``: a process that claims queued runs from a shared database and
executes them.

Theory of operation
-------------------
Any number of workers, on any number of machines, share one database (PostgreSQL; or
one SQLite file for several processes on one machine). Each runs up to
``concurrency`` runs at once in one event loop:

1. **Claim.** While a slot is free, :meth:`~engine.contracts.queue.QueueStore.claim_next`
   makes this process the owner of the oldest claimable run: a queued one, or one
   whose owner's lease ran out (no heartbeat for ``lease_s``: the owner died). Claims
   are atomic; two workers never take the same run. With nothing claimable, every
   ``lease_s / 3`` the worker also adopts orphans it can tell are dead sooner: runs
   owned by a process of this machine that no longer exists
   (:func:`engine.orphans.find_orphans`, taken with a compare-and-set).
2. **Execute.** The run is resumed (:meth:`engine.core.Engine.prepare_resume`): a fresh
   queued run starts from its inputs; a run taken over from a dead worker continues
   from its persisted steps, so completed steps never run again and the ones that were
   in flight run again. Each run's heartbeat (every 2 s) renews the lease.
3. **Leases.** Every ``lease_s / 3`` the worker checks that it still owns its runs; a
   run another worker took over (this one stalled past its lease) is dropped here,
   without writing anything more.
4. **Reviews and cancels.** A run that stops for a review is handed back to the queue
   unless a decision already arrived (then it continues at once); a decision made later
   anywhere queues it again (:func:`engine.queue.requeue`). A cancel request made
   anywhere reaches the run's runner, which polls the run row.
5. **Stop.** On SIGTERM or SIGINT the worker claims nothing more, gives its runs
   ``grace_s`` to finish, then hands the rest back (their in-flight steps run again on
   another worker). A second signal hands them back at once.
6. **Lost executor.** When the executor itself is gone (the Dask scheduler was lost and
   did not come back: :class:`~engine.executors.ExecutorLostError`), the worker cannot
   run anything more: it stops at once, hands every run it holds back to the queue (no
   retry is spent on them) and :meth:`Worker.run` returns with
   :attr:`Worker.executor_lost` set, so ``stepwell worker`` exits with one line.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from engine.contracts.errors import (
    ConflictError,
    DefinitionError,
    NotFoundError,
    RegistryError,
    StepwellError,
    StorageError,
    UsageError,
    error_in,
)
from engine.contracts.frozen import record
from engine.contracts.values import RunStatus, StepStatus
from engine.durable import STALE_HEARTBEAT_S, this_host
from engine.orphans import end_orphan, find_orphans
from engine.queue import queue_of

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.executors import ExecutorLostError

log = logging.getLogger("stepwell.worker")


@record
class WorkerOptions:
    """How a worker behaves.

    Attributes:
        concurrency: runs executing at once in this process.
        lease_s: a run whose owner wrote no heartbeat for this long is taken over.
        poll_s: how often an idle worker looks for queued runs.
        grace_s: on SIGTERM, how long runs may go on before they are handed back.
        idle_exit_s: exit after this long with nothing to do (None: never).
    """

    concurrency: int = 4
    lease_s: float = STALE_HEARTBEAT_S
    poll_s: float = 0.5
    grace_s: float = 30.0
    idle_exit_s: float | None = None


@dataclass(slots=True)
class WorkerStats:
    """What a worker did: runs claimed, ended (any status), handed back, lost."""

    claimed: int = 0
    ended: int = 0
    handed_back: int = 0
    lost: int = 0


class Worker:
    """Claims and executes queued runs (see the module docstring).

    Args:
        engine: the engine (and its store, shared with the other workers).
        options: how to behave.

    Raises:
        UsageError: the engine's store has no run queue.
    """

    def __init__(self, engine: Engine, options: WorkerOptions | None = None) -> None:
        self.engine = engine
        self.options = options or WorkerOptions()
        self.queue = queue_of(engine.store)
        self.stats = WorkerStats()
        self._pid = os.getpid()
        self._host = this_host()
        self._running: dict[str, anyio.CancelScope] = {}
        self._lost: set[str] = set()
        self._stopping = False
        self._hurry = False
        self._next_scan = 0.0
        self._wake = anyio.Event()
        #: The error that stopped this worker because its executor is gone, else None.
        self.executor_lost: StepwellError | None = None

    def stop(self) -> None:
        """Claim nothing more; runs get ``grace_s`` to finish (call from the loop)."""
        self._stopping = True
        self._wake.set()

    async def run(self, *, handle_signals: bool = False) -> WorkerStats:
        """Work until :meth:`stop` (or SIGTERM/SIGINT with ``handle_signals``), or until
        idle for ``idle_exit_s``.

        Returns:
            What this worker did.
        """
        async with anyio.create_task_group() as tg:
            if handle_signals:
                tg.start_soon(self._signals)
            tg.start_soon(self._watch_leases)
            idle_since = time.monotonic()
            while not self._stopping:
                self._fill(tg)
                if self._running:
                    idle_since = time.monotonic()
                elif (self.options.idle_exit_s is not None
                      and time.monotonic() - idle_since >= self.options.idle_exit_s):
                    break
                with anyio.move_on_after(self.options.poll_s):
                    await self._wake.wait()
                self._wake = anyio.Event()
            await self._drain()
            tg.cancel_scope.cancel()
        return self.stats

    # ------------------------------------------------------------------ claiming

    def _fill(self, tg: TaskGroup) -> None:
        while len(self._running) < self.options.concurrency and not self._stopping:
            now = time.time()
            try:
                run_id = self.queue.claim_next(self._pid, now=now,
                                               stale_before=now - self.options.lease_s)
                if run_id is None:
                    run_id = self._adopt(now)
            except StorageError as exc:  # the database is away: try again at the next poll
                log.warning("cannot claim runs: %s", exc)
                return
            if run_id is None:
                return
            self.stats.claimed += 1
            self._running[run_id] = anyio.CancelScope()
            tg.start_soon(self._drive, run_id)

    def _adopt(self, now: float) -> str | None:
        """An orphan whose owner is known dead (see the module docstring), now ours."""
        if now < self._next_scan:
            return None
        self._next_scan = now + self.options.lease_s / 3
        store = self.engine.store
        for run in find_orphans(store, now):
            if store.claim_owner(run.id, self._pid, now, seen_pid=run.owner_pid,
                                 seen_heartbeat=run.heartbeat_at):
                return run.id
        return None

    async def _drive(self, run_id: str) -> None:
        scope = self._running[run_id]
        status: RunStatus | None = None
        try:
            with scope:
                status = await self._execute(run_id)
        except (StepwellError, BaseExceptionGroup) as exc:
            lost = executor_lost_in(exc)
            if lost is not None:  # nothing more can run here: hand everything back
                self.executor_lost = self.executor_lost or lost
                self._hurry = True
                self.stop()
                log.info("run %s stopped: %s", run_id, lost)
            elif isinstance(exc, StepwellError):
                log.error("run %s stopped: %s", run_id, exc)
            else:
                raise
        finally:
            del self._running[run_id]
            self._settle(run_id, scope, status)
            self._wake.set()

    async def _execute(self, run_id: str) -> RunStatus | None:
        engine = self.engine
        while True:
            try:
                prepared = engine.prepare_resume(run_id)
            except (ConflictError, UsageError, NotFoundError) as exc:
                log.info("run %s not executed here: %s", run_id, exc)
                return None
            except (DefinitionError, RegistryError) as exc:
                reason = f"the worker cannot run its workflow: {exc}"
                end_orphan(engine.store, run_id, reason)
                log.error("run %s ended: %s", run_id, reason)
                return RunStatus.ERROR
            result = await engine.execute(prepared)
            if result.status is not RunStatus.AWAITING_REVIEW or not self._decided(run_id):
                return result.status

    def _decided(self, run_id: str) -> bool:
        """True when a review of a step still waiting was decided meanwhile."""
        store = self.engine.store
        waiting = {s.step_id for s in store.load_steps(run_id)
                   if s.status is StepStatus.AWAITING_REVIEW}
        return any(r.decision is not None and r.step_id in waiting
                   for r in store.reviews(run_id=run_id, limit=None))

    def _settle(self, run_id: str, scope: anyio.CancelScope, status: RunStatus | None) -> None:
        """After a run's execution here: hand it back unless it ended or was taken over."""
        if run_id in self._lost:
            self._lost.discard(run_id)
            self.stats.lost += 1
            return
        if status is not None and status.terminal:
            self.stats.ended += 1
            return
        try:
            released = self.queue.release(run_id, self._pid)
            if released and (scope.cancel_called or self.executor_lost is not None):
                self.stats.handed_back += 1
        except StepwellError as exc:
            log.error("run %s could not be handed back: %s", run_id, exc)

    # ------------------------------------------------------------------ leases, stop

    async def _watch_leases(self) -> None:
        """Drop runs another worker took over (this one stalled past its lease)."""
        while True:
            await anyio.sleep(self.options.lease_s / 3)
            for run_id, scope in list(self._running.items()):
                try:
                    run = self.engine.store.load_run(run_id)
                except StepwellError:
                    continue
                mine = run.owner_pid == self._pid and run.owner_host in (None, self._host)
                if not mine and not run.status.terminal:
                    log.warning("run %s was taken over by another worker; dropped here",
                                run_id)
                    self._lost.add(run_id)
                    scope.cancel()

    async def _drain(self) -> None:
        """Give running runs ``grace_s``, then hand back what is left."""
        with anyio.move_on_after(self.options.grace_s):
            while self._running and not self._hurry:
                await anyio.sleep(0.05)
        for scope in list(self._running.values()):
            scope.cancel()
        while self._running:
            await anyio.sleep(0.01)

    async def _signals(self) -> None:
        """Stop on SIGTERM/SIGINT; a second signal hands the runs back at once."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                if self._stopping:
                    self._hurry = True
                log.info("stopping: %d run(s) in flight", len(self._running))
                self.stop()


def executor_lost_in(exc: BaseException) -> ExecutorLostError | None:
    """The :class:`~engine.executors.ExecutorLostError` in ``exc`` (raised by a run's
    task group, so possibly inside exception groups), or None."""
    from engine.executors import ExecutorLostError

    return error_in(exc, ExecutorLostError)
