"""The runner: the only module that awaits. It drives a Scheduler with an anyio task group.

One driver coroutine owns the scheduler and the store connection. Workers run block
handlers and send what happened back over a memory stream. The driver loop:

1. release ready tasks up to ``max_concurrency`` (``queued`` -> ``running``);
2. persist every event emitted since the last commit *in one transaction* (a completion
   and the release of its dependents share a commit: group commit without delaying
   anyone), then start the released workers;
3. wait for the next message, then drain every message already waiting before
   committing again.

So a step's completion is always committed before anything that depends on it starts.
The run's own ``running`` goes in the first of these commits, with its first steps.

Blocks whose handler never suspends for their config (``BlockType.runs_inline``: pure
control blocks, synchronous ``python:`` functions) skip the worker: the driver calls
them right after the commit that marks them ``running``, with no task, cancel scope or
timer. Loop sentinels run no user code and return at once: their ``queued`` and
``running`` are committed with their outcome (one row update); a while_loop's end
sentinel created beside inline steps only is created by that commit too
(:meth:`Runner._defer_end_sentinels`). When only sentinels start, what came before them
waits for the next commit too: the one that marks a step ``running`` before its handler
starts, or the one the driver makes before it waits. A crash in between loses engine
work only, which a resumed run does again. So every other step is ``running`` in the
database before its handler starts (a step that ran when its process died counts as an
attempt), after every completion it depends on. The driver yields to the event loop
every few milliseconds so the cancel watcher and async workers keep running. A retry of
an inline step goes through a worker.
Retries go through the driver too (``running -> queued`` then ``queued -> running``), and
the worker waits for the ``running`` transition to be committed before its next attempt.
An attempt itself (context, timeout, output checks, failures) is :mod:`engine.attempts`.

Each attempt's context carries a :class:`~engine.contracts.logs.StepLog`. What the
handler wrote there (function output, ``api_call`` summaries; a loop's size when it
opens) is committed in the same transaction as the batch holding the attempt's outcome
(:meth:`~engine.contracts.store.RunStore.apply`, ``logs``), so a step's log is complete
once the step has ended, and writing one costs no commit of its own. While attempts
run, the heartbeat thread stores the lines they wrote so far (:meth:`Runner.drain_logs`,
about twice a second), so they can be followed live and survive a killed process. An
attempt that wrote nothing costs one small object.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from engine.attempts import attempt_log, run_attempt, run_attempt_inline, timeout_of
from engine.compiled import CompiledGraph, Node
from engine.contracts.blocks import BlockContext, BlockResult, block_context
from engine.contracts.errors import ErrorCategory
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.logs import AttemptLog, StepLog
from engine.contracts.store import Store
from engine.contracts.values import RunStatus, StepStatus
from engine.durable import end_run
from engine.gcpause import collector_paused
from engine.heartbeat import Heartbeat, watch_cancel
from engine.options import RetryPolicy
from engine.replay import Replay
from engine.scheduler import Scheduler, Task

if TYPE_CHECKING:
    from engine.executors import AttemptExecutor

__all__ = ["Listener", "RetryPolicy", "RunSettings", "Runner", "untimed_yields"]

#: How long inline steps may run back to back before the driver yields to the event
#: loop (cancel watcher, heartbeat, async workers).
_YIELD_EVERY_S = 0.02


@contextmanager
def untimed_yields() -> Iterator[None]:
    """Within it, run drivers yield to the event loop only when they wait for a step.

    By default a driver that has run inline steps for :data:`_YIELD_EVERY_S` lets the
    cancel watcher and async steps run and takes what they sent, at a point that moves
    with the machine's speed. Without that, runs of a workflow whose blocks are
    deterministic make the same scheduling decisions on any machine (which for_each
    iterations open before one fails, how batches are cut), at the price of async steps
    waiting until the inline work runs dry. For tests and instruction counts; not
    thread-safe (it changes a module setting for the whole process).
    """
    global _YIELD_EVERY_S  # a process-wide setting, restored on exit
    before, _YIELD_EVERY_S = _YIELD_EVERY_S, math.inf
    try:
        yield
    finally:
        _YIELD_EVERY_S = before


#: The transitions of a loop sentinel committed with its outcome (see the docstring).
_HELD = frozenset({StepStatus.QUEUED, StepStatus.RUNNING})
_PENDING = StepStatus.PENDING
_CANCELLED_BY_REQUEST = "cancelled by request"
log = logging.getLogger(__name__)
_NO_SCHEMAS: Mapping[str, Any] = {}
#: The key of the runner's per-node statics in a graph's ``memo``.
_NODE_STATIC = "runner.node_static"
#: A commit hook: ``listener(run_id, events, run_update)`` after each committed batch.
Listener = Callable[[str, list[StepEvent], RunUpdate | None], None]


@dataclass(slots=True, kw_only=True)
class RunSettings:
    """Knobs of one run (filled by the Engine)."""

    run_id: str
    run_inputs: Mapping[str, Any] = field(default_factory=dict)
    max_concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    services: Mapping[str, Any] = field(default_factory=dict)
    #: How often the heartbeat thread looks for a cancel request from elsewhere.
    cancel_poll_s: float = 0.25
    heartbeat_s: float = 2.0
    replay: Replay | None = None
    #: Called as ``listener(run_id, events, run_update)`` after each commit, in the
    #: runner's task, so what a listener sees is already durable. Keep them cheap.
    listeners: Sequence[Listener] = ()
    #: Set it after ``store.request_cancel`` to have the cancel watcher look at once
    #: instead of at its next poll (an in-process ``RunHandle.cancel``).
    cancel_wakeup: anyio.Event | None = None
    #: Where attempts of work blocks run (:mod:`engine.executors`); None: right here.
    executor: AttemptExecutor | None = None


class Runner:
    """Executes one run of ``graph``, persisting every transition through ``store``."""

    def __init__(self, graph: CompiledGraph, store: Store, settings: RunSettings) -> None:
        self.graph = graph
        self.store = store
        self.settings = settings
        replay = settings.replay
        self.scheduler = Scheduler(
            graph, recorded=replay.steps if replay is not None else frozenset())
        self._backlog: deque[Task] = deque()
        self._in_flight = 0
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._policies: dict[str, RetryPolicy] = {}
        #: Per node: its timeout and its input schemas (the same for every attempt), and
        #: whether its block type said it runs inline (see _runs_inline). Kept with the
        #: graph, for every run of it (:func:`engine.graph.compile_shared`): a chain's
        #: nodes run once per run each. An entry names its node, since a stubbed copy
        #: of the graph shares the memo but not the nodes (:func:`engine.launch.stand_ins`).
        self._node_static: dict[str, list[Any]] = graph.memo.setdefault(_NODE_STATIC, {})
        self._logs: list[AttemptLog] = []
        #: The logs of attempts running now, by (step id, attempt): drained while they run.
        self._live: dict[tuple[str, int], StepLog] = {}
        #: Held while entries are taken from a log and stored, so they stay in order.
        self._log_lock = threading.Lock()
        #: ``queued``/``running`` of loop sentinels, committed with their outcome, and
        #: while_loop end sentinels' creation (see _defer_end_sentinels).
        self._held: list[StepEvent] = []
        #: The run's ``running``, until the first commit carries it.
        self._starting: RunUpdate | None = None
        #: Set by the driver when it took a cancel request in hand.
        self._cancel_seen = threading.Event()
        #: Set by the heartbeat thread when it found a cancel request in the store.
        self.cancel_noticed = threading.Event()
        #: True once the heartbeat thread had to cancel the run itself. A plain flag,
        #: not an Event: nothing waits for it, and the driver reads it on every step
        #: (``Event.is_set`` is a Python call); one thread writes it, once.
        self._abandoned = False

    async def run(self) -> RunUpdate:
        """Run to the end (or to cancellation) and return the run's final lifecycle."""
        sched = self.scheduler
        send, recv = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        # ``running`` is committed with the first batch of steps (one commit fewer)
        self._starting = RunUpdate(status=RunStatus.RUNNING)
        heartbeat = Heartbeat(self, self.settings.heartbeat_s)
        try:
            outcome = await self._drive(sched, send, recv)
        finally:
            heartbeat.stop()
        try:
            if self._abandoned:
                return self._abandoned_outcome()
            self._flush(outcome)
            return outcome
        finally:
            sched.release()

    def _abandoned_outcome(self) -> RunUpdate:
        reason = self._cancel_requested() or _CANCELLED_BY_REQUEST
        return RunUpdate(status=RunStatus.CANCELLED, reason=reason)

    def cancel_taken(self) -> bool:
        """True once the driver has taken a cancel request in hand."""
        return self._cancel_seen.is_set()

    def abandon(self, reason: str) -> None:
        """Cancel the run from outside the driver, which a step holds (heartbeat thread).

        A synchronous step that never returns control cannot be interrupted; the run is
        cancelled in the store anyway (its unfinished steps ``cancelled``), and whatever
        the driver does once the step returns is dropped.
        """
        self._abandoned = True
        end_run(self.store, self.settings.run_id,
                RunUpdate(status=RunStatus.CANCELLED, reason=reason), reason)

    async def _drive(self, sched: Scheduler, send: MemoryObjectSendStream[tuple[Any, ...]],
                     recv: MemoryObjectReceiveStream[tuple[Any, ...]]) -> RunUpdate:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_cancel, self, send)
            with collector_paused():  # a burst of the engine's own objects (gcpause)
                sched.start()
            requested = self._cancel_requested()
            if requested:
                sched.cancel(requested)
            yielded = time.monotonic()
            while True:
                if self._abandoned:
                    break
                self._release(tg, send)
                if sched.finished:
                    break
                if sched.has_ready or (
                        self._backlog and self._in_flight < self.settings.max_concurrency):
                    # Inline steps made progress: keep going, but let the watcher and
                    # workers run now and then, and pick up what they sent.
                    if time.monotonic() - yielded > _YIELD_EVERY_S:
                        await anyio.lowlevel.checkpoint()
                        self._receive_nowait(recv)
                        yielded = time.monotonic()
                    continue
                if self._in_flight == 0 and not self._backlog:
                    break
                self._flush()  # what sentinels left uncommitted: nothing waits for it
                await self._receive(recv)
                yielded = time.monotonic()
            tg.cancel_scope.cancel()
        if self._abandoned:
            return self._abandoned_outcome()
        if sched.finished or sched.awaiting:
            return sched.outcome()
        # Unreachable unless the scheduler has a bug: keep the run inspectable.
        return RunUpdate(status=RunStatus.ERROR, reason="run stalled: no step can make progress")

    # ------------------------------------------------------------------ driver

    def _release(self, tg: TaskGroup, send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        sched = self.scheduler
        replay = self.settings.replay
        while sched.has_ready:
            for task in sched.take_ready():
                if replay is None:
                    self._backlog.append(task)
                elif not replay.settle(sched, task):
                    self._backlog.append(replay.attempt(sched, task))
        starting: list[tuple[Task, bool]] = []
        hold: set[str] = set()
        all_inline = True
        backlog, limit = self._backlog, self.settings.max_concurrency
        while backlog and self._in_flight < limit:
            task = backlog.popleft()
            sched.mark_running(task.step_id)
            self._in_flight += 1
            inline = task.retry_count == 0 and self._runs_inline(task.node)
            if not inline:
                all_inline = False
            elif task.node.sentinel_role is not None:
                hold.add(task.step_id)
            starting.append((task, inline))
        if not starting or len(hold) < len(starting):
            # End sentinels created now may wait when inline steps start and nothing
            # else: the commit their outcomes make comes before the driver waits.
            self._flush(hold=hold, defer_ends=all_inline and bool(starting))
        for task, inline in starting:
            if inline:
                self._run_inline(task, tg, send)
            else:
                tg.start_soon(self._execute, task, send)

    def _runs_inline(self, node: Node) -> bool:
        static = self._node_static.get(node.id)
        if static is None or static[0] is not node:
            static = self._static(node)
        if not static[3]:  # re-asked while False: a function target may be imported now
            static[3] = node.impl.runs_inline(node.config)  # only True is kept: it
            if not static[3]:  # depends on the config alone
                return False
        executor = self.settings.executor  # _sent(), inlined: every step asks
        return executor is None or not executor.takes(node)

    def _static(self, node: Node) -> list[Any]:
        """``[node, timeout, input schemas, runs inline]`` of ``node`` (see __init__)."""
        static = self._node_static.get(node.id)
        if static is None or static[0] is not node:
            static = self._node_static[node.id] = [
                node, timeout_of(node.config),
                self.graph.input_schemas.get(node.id, _NO_SCHEMAS), False]
        return static

    def _run_inline(self, task: Task, tg: TaskGroup,
                    send: MemoryObjectSendStream[tuple[Any, ...]]) -> None:
        """First attempt of an inline block, right here in the driver (no task)."""
        ctx = self._context(task, task.retry_count)
        outcome = run_attempt_inline(task, ctx)
        self._keep_log(task, ctx, outcome)
        if isinstance(outcome, BlockResult):
            self._done(task.step_id, outcome)
            return
        error, retry_after = outcome
        policy = self._policy(task)
        if error.category is ErrorCategory.PERMANENT or policy.max_attempts <= 1:
            self._handle(("fail", task.step_id, error))
            return
        self._handle(("retry", task.step_id, error))
        tg.start_soon(self._execute, task, send, 1, retry_after)

    async def _receive(self, recv: MemoryObjectReceiveStream[tuple[Any, ...]]) -> None:
        self._handle(await recv.receive())
        self._receive_nowait(recv)

    def _receive_nowait(self, recv: MemoryObjectReceiveStream[tuple[Any, ...]]) -> None:
        while True:
            try:
                message = recv.receive_nowait()
            except anyio.WouldBlock:
                return
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, step_id, value = message
        if kind == "done":
            self._done(step_id, value)
            return
        sched = self.scheduler
        if sched.cancelled and kind != "cancel":
            if kind == "fail":
                self._in_flight -= 1
            return
        if kind == "fail":
            self._in_flight -= 1
            sched.fail(step_id, value)
        elif kind == "retry":
            sched.retry(step_id, value)
            self._flush()
        elif kind == "resume":
            sched.mark_running(step_id)
            self._flush()
            value.set()
        elif kind == "cancel":
            self._cancel_seen.set()
            sched.cancel(value)
            for scope in self._scopes.values():
                scope.cancel()

    def _done(self, step_id: str, result: BlockResult) -> None:
        """A step's handler returned ``result`` (an inline step's, or a worker's "done"
        message); once the run is cancelled only the step count changes."""
        self._in_flight -= 1
        sched = self.scheduler
        if sched.cancelled:
            return
        if result.review is not None:
            sched.await_review(step_id, result)
        else:
            sched.complete(step_id, result)

    def _keep_log(self, task: Task, ctx: BlockContext, outcome: Any) -> None:
        """Queue what the attempt wrote, and :meth:`drain_logs` did not store yet, for the
        next commit (nothing, for most steps)."""
        self._live.pop((task.step_id, ctx.attempt), None)
        log_ = ctx.log
        if log_ is None or log_.empty:
            if log_ is None or (type(outcome) is BlockResult and outcome.control is None):
                return  # nothing written, and no loop opened to note (most steps)
            written = attempt_log(task, ctx, outcome)  # at most a loop's note
        else:
            with self._log_lock:  # a drain in progress stores its part first
                taken = log_.taken
                written = attempt_log(task, ctx, outcome)
                log_.take()  # nothing left for a drain that still holds this log
            if written is not None and taken:
                entries = written.entries[taken:]
                written = replace(written, entries=entries) if entries else None
        if written is not None:
            self._logs.append(written)

    def drain_logs(self) -> None:
        """Store the complete lines running attempts wrote since the last drain (called
        by the heartbeat thread, so a step's output can be followed while it runs and
        survives the process being killed)."""
        live = self._live.copy()
        if not live:
            return
        with self._log_lock:
            pieces = [AttemptLog(step_id=step_id, attempt=attempt, entries=entries)
                      for (step_id, attempt), log_ in live.items()
                      if (entries := log_.take())]
            if pieces and not self._abandoned:
                self.store.append_logs(self.settings.run_id, pieces, now=time.time())

    def _flush(self, run_update: RunUpdate | None = None, hold: set[str] | None = None,
               defer_ends: bool = False) -> None:
        """Commit what happened since the last commit; ``hold``: loop sentinels about to
        run inline, whose ``queued``/``running`` wait for their outcome; ``defer_ends``:
        only inline steps start now, so the creation of while_loop end sentinels may
        wait too (:meth:`_defer_end_sentinels`)."""
        events = self.scheduler.drain()
        if self._abandoned:
            return  # the run was cancelled under a step that held the driver
        if self._held:
            events = self._held + events
            self._held = []
        if hold:
            self._held = [e for e in events if e.step_id in hold and e.status in _HELD]
            if self._held:
                events = [e for e in events if e.step_id not in hold or e.status not in _HELD]
        opened = self.scheduler.opened_ends
        if opened:
            self.scheduler.opened_ends = []
            if defer_ends:
                events = self._defer_end_sentinels(events, opened)
        starting = self._starting is not None
        if starting:
            if run_update is None:
                run_update = self._starting
            else:  # the run ends before its first batch: it still starts first
                self.store.apply(self.settings.run_id, [], self._starting, now=time.time())
            self._starting = None
        logs = self._logs  # in the same commit: a step's log is there once it has ended
        if logs:
            self._logs = []
        if self.settings.replay is not None:
            events = self.settings.replay.filter(events)
        if events or run_update is not None or logs:
            if starting:  # the run's first commit creates its steps: a burst (gcpause)
                with collector_paused():
                    self.store.apply(self.settings.run_id, events, run_update,
                                     now=time.time(), logs=logs)
            else:
                self.store.apply(self.settings.run_id, events, run_update, now=time.time(),
                                 logs=logs)
            if events or run_update is not None:
                for listener in self.settings.listeners:
                    listener(self.settings.run_id, events, run_update)

    def _defer_end_sentinels(self, events: list[StepEvent], ends: list[str]
                             ) -> list[StepEvent]:
        """Hold back the creation of the while_loop end sentinels (``ends``: the ones
        created since the last commit) the batch creates last.

        An iteration's end sentinel is created ``pending`` with its scope and runs once
        the body is done: written now, its row would be updated by the commit holding
        its outcome. Held, it is created by that commit with its outcome, or by the
        next one, whichever comes first. Only creations that nothing else in the batch
        follows or moves are held, so every row still gets its ``seq`` in the order its
        step was created (the order a run lists its steps in).
        """
        moved = {e.step_id for e in self._held}  # their moves wait already
        created = set(ends)
        cut = len(events)
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if event.status is not _PENDING:
                moved.add(event.step_id)
            elif event.step_id in created and event.step_id not in moved:
                cut = index
            else:
                break
        if cut == len(events):
            return events
        # from the cut on, every creation is one to hold, and nothing else concerns them
        tail = events[cut:]
        self._held.extend(e for e in tail if e.status is _PENDING)
        return [*events[:cut], *(e for e in tail if e.status is not _PENDING)]

    def _cancel_requested(self) -> str | None:
        """The reason given with a cancel request for this run, if one was made."""
        return self.store.cancel_requested(self.settings.run_id)

    # ------------------------------------------------------------------ workers

    def _policy(self, task: Task) -> RetryPolicy:
        policy = self._policies.get(task.node.id)
        if policy is None:
            raw = getattr(task.node.config, "retry", None)
            policy = RetryPolicy.from_config(raw, self.settings.retry)
            self._policies[task.node.id] = policy
        return policy

    async def _execute(self, task: Task, send: MemoryObjectSendStream[tuple[Any, ...]],
                       attempt: int | None = None, retry_after: float | None = None) -> None:
        """Attempt ``task`` until it succeeds, fails for good or runs out of attempts.

        ``attempt``/``retry_after`` continue an inline first attempt that asked for a
        retry: wait, then go through the driver's ``running`` commit like any retry.
        """
        policy = self._policy(task)
        executor = self.settings.executor if self._sent(task.node) else None
        with anyio.CancelScope() as scope:
            self._scopes[task.step_id] = scope
            try:
                if attempt is None:
                    attempt = task.retry_count
                else:
                    await self._await_retry(task, send, policy, attempt, retry_after)
                while True:
                    ctx = self._context(task, attempt)
                    outcome = await (executor.attempt(task, ctx) if executor is not None
                                     else run_attempt(task, ctx))
                    self._keep_log(task, ctx, outcome)
                    if isinstance(outcome, BlockResult):
                        await send.send(("done", task.step_id, outcome))
                        return
                    error, retry_after = outcome
                    last = attempt + 1 >= policy.max_attempts
                    if error.category is ErrorCategory.PERMANENT or last:
                        await send.send(("fail", task.step_id, error))
                        return
                    attempt += 1
                    await send.send(("retry", task.step_id, error))
                    await self._await_retry(task, send, policy, attempt, retry_after)
            finally:
                self._scopes.pop(task.step_id, None)

    def _sent(self, node: Node) -> bool:
        """True when the run's executor runs ``node``'s attempts elsewhere."""
        executor = self.settings.executor
        return executor is not None and executor.takes(node)

    @staticmethod
    async def _await_retry(task: Task, send: MemoryObjectSendStream[tuple[Any, ...]],
                           policy: RetryPolicy, attempt: int, retry_after: float | None) -> None:
        """Back off, then wait until the driver has committed ``queued -> running``."""
        await anyio.sleep(policy.delay(attempt, retry_after))
        gate = anyio.Event()
        await send.send(("resume", task.step_id, gate))
        await gate.wait()

    def _context(self, task: Task, attempt: int) -> BlockContext:
        node = task.node
        static = self._node_static.get(node.id)
        if static is None or static[0] is not node:
            static = self._static(node)
        timeout, input_schemas = static[1], static[2]
        if node.sentinel_role is None:
            step_log = self._live[(task.step_id, attempt)] = StepLog()
        else:  # a loop sentinel writes nothing: no log to keep or drain
            step_log = None
        settings = self.settings
        return block_context(
            run_id=settings.run_id, step_id=task.step_id, block_id=node.id,
            block_type=node.type, label=node.label, scope=task.scope, attempt=attempt,
            files=self.store.files, run_inputs=settings.run_inputs,
            env=settings.env, input_schemas=input_schemas,
            timeout_seconds=timeout, services=settings.services, log=step_log,
        )
