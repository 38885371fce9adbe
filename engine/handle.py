"""RunHandle: a run executing in the background of an app's event loop.

``handle = await engine.start(workflow, inputs)`` validates the workflow, persists the
run and returns at once; the run goes on in a task. The handle then offers:

* ``await handle.result()``: the :class:`~engine.core.RunResult` once the run stops;
* ``async for event in handle.events()``: every step transition and run status change
  this execution makes, as :class:`RunEvent` objects numbered ``0, 1, 2, ...`` with no
  gaps, each yielded after the transaction that wrote it committed; the last one is the
  run's final event (``final=True``: completed, error, cancelled or awaiting_review);
* ``handle.cancel()``: stop the run (running steps are interrupted, waiting ones become
  ``cancelled``), the same as ``stepwell runs cancel`` from another process.

Events come from the runner's commit hook (the handle executes its run through
:meth:`engine.core.Engine.execute` with itself as listener), called in the runner's task
right after each commit, so an event never announces something that is
not in the database. Every event is kept for the handle's life, so a subscriber that
arrives late (an SSE client connecting after the run started) still gets them all from
number 0; several subscribers may read at once.

Where the task lives: on asyncio, a task of the running loop (the handle keeps a strong
reference to it); on any backend, ``engine.start(..., task_group=tg)`` runs it in your
task group instead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from engine.contracts.errors import UsageError
from engine.contracts.events import RunUpdate, StepEvent
from engine.contracts.frozen import record
from engine.contracts.values import RunStatus

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.launch import PreparedRun, RunResult

#: Run statuses after which this execution makes no more events.
_FINAL = frozenset({RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.CANCELLED,
                    RunStatus.AWAITING_REVIEW})


@record
class RunEvent:
    """One committed change: a step transition (``kind="step"``) or a run status (``"run"``).

    Attributes:
        seq: position in this execution's stream, from 0, without gaps.
        run_id: the run.
        kind: ``step`` or ``run``.
        status: the step's new lifecycle status, or the run's.
        at: when the commit that wrote it finished (epoch seconds).
        step_id, block_id, block_type: the step (``None`` for run events).
        retry_count: attempts retried so far (a retry is ``running -> queued``).
        reason: why a step was skipped or cancelled, or a run cancelled.
        error: ``{message, stage, category, code}`` of a failed step or run.
        outputs: handle payloads (wire form) of a step that completed or awaits review.
        loop_containers: the step's loop frames, outermost first.
        failing_step_id: the step that failed an ``error`` run.
        waiting_for: block ids an ``awaiting_review`` run waits on.
        final: True on the last event of this execution.
    """

    seq: int
    run_id: str
    kind: str
    status: str
    at: float
    step_id: str | None = None
    block_id: str | None = None
    block_type: str | None = None
    retry_count: int = 0
    reason: str | None = None
    error: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    loop_containers: list[dict[str, Any]] = field(default_factory=list)
    failing_step_id: str | None = None
    waiting_for: list[str] = field(default_factory=list)
    final: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what an SSE ``data:`` line carries); ``at`` in ISO 8601 UTC."""
        at = datetime.fromtimestamp(self.at, UTC).isoformat().replace("+00:00", "Z")
        return {
            "seq": self.seq, "run_id": self.run_id, "kind": self.kind, "status": self.status,
            "at": at, "step_id": self.step_id, "block_id": self.block_id,
            "block_type": self.block_type, "retry_count": self.retry_count,
            "reason": self.reason, "error": self.error, "outputs": self.outputs,
            "loop_containers": self.loop_containers,
            "failing_step_id": self.failing_step_id, "waiting_for": self.waiting_for,
            "final": self.final,
        }


class RunHandle:
    """A run started with :meth:`engine.core.Engine.start`; see the module docstring.

    Attributes:
        run_id: the run's id (its steps are readable with ``engine.client`` at any time).
    """

    def __init__(self, engine: Engine, run_id: str) -> None:
        self.engine = engine
        self.run_id = run_id
        self._events: list[RunEvent] = []
        self._changed = anyio.Event()
        self._cancel_wakeup = anyio.Event()
        self._result: RunResult | None = None
        self._exception: BaseException | None = None
        self._finished = anyio.Event()
        self._task: Any = None

    # ------------------------------------------------------------------ reading

    @property
    def done(self) -> bool:
        """True once this execution stopped (ended, failed, or paused for a review)."""
        return self._finished.is_set()

    async def result(self) -> RunResult:
        """Wait for the run to stop and return how it ended.

        Raises:
            StepwellError: what stopped the execution itself (a StorageError, say); a
                failing step is not an exception: it ends the run with ``status=error``.
        """
        await self._finished.wait()
        if self._exception is not None:
            raise self._exception
        assert self._result is not None
        return self._result

    async def events(self) -> AsyncIterator[RunEvent]:
        """Every event of this execution from number 0, live, ending with the final one.

        Raises:
            StepwellError: the execution died without a final event (after the events
                it did commit).
        """
        seen = 0
        while True:
            while seen < len(self._events):
                event = self._events[seen]
                seen += 1
                yield event
                if event.final:
                    return
            if self._finished.is_set():
                if self._exception is not None:
                    raise self._exception
                return
            await self._changed.wait()

    def cancel(self, reason: str = "cancelled by request") -> bool:
        """Stop the run with ``reason``. Returns False when it had already ended.

        A running execution is interrupted at once (its steps become ``cancelled`` and
        :meth:`result` returns ``status=cancelled``); a run paused for a review is
        cancelled in the database directly.
        """
        run = self.engine.store.load_run(self.run_id)
        if run.status.terminal:
            return False
        if self.done:
            self.engine.cancel(self.run_id, reason)
            return True
        self.engine.store.request_cancel(self.run_id, reason)
        self._cancel_wakeup.set()
        return True

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<RunHandle {self.run_id} {state}, {len(self._events)} events>"

    # ------------------------------------------------------------------ engine side

    def on_commit(self, run_id: str, events: list[StepEvent], update: RunUpdate | None) -> None:
        """The runner's commit hook: turn what was just committed into RunEvents.

        The run's ``running`` shares a commit with its first steps and comes before
        them; any other run change (review, end) comes after the steps that caused it.
        """
        now = time.time()
        start = update if update is not None and update.status is RunStatus.RUNNING else None
        if start is not None:
            self._events.append(_run_event(len(self._events), run_id, start, now))
        for ev in events:
            self._events.append(_step_event(len(self._events), run_id, ev, now))
        if update is not None and start is None:
            self._events.append(_run_event(len(self._events), run_id, update, now))
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def launch(self, prepare: Callable[[], PreparedRun], task_group: TaskGroup | None) -> None:
        """Execute the run ``prepare()`` returns in ``task_group``, or as a task of the
        running asyncio loop, with this handle listening to its commits.

        Args:
            prepare: builds the prepared run (in the task: its errors come from
                :meth:`result`).
            task_group: where the run executes; None for a task of the asyncio loop.

        Raises:
            UsageError: no task group was given and the event loop is not asyncio.
        """
        if task_group is not None:
            task_group.start_soon(self._run, prepare)
            return
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            raise UsageError(
                "engine.start() needs a task group outside asyncio: "
                "`async with anyio.create_task_group() as tg: await engine.start(..., "
                "task_group=tg)`.")
        import asyncio

        self._task = asyncio.get_running_loop().create_task(
            self._run(prepare), name=f"stepwell run {self.run_id}")

    async def _run(self, prepare: Callable[[], PreparedRun]) -> None:
        try:
            self._result = await self.engine.execute(
                prepare(), listeners=(self.on_commit,), cancel_wakeup=self._cancel_wakeup)
        except Exception as exc:  # noqa: BLE001 - kept and re-raised by result()/events()
            self._exception = exc
        finally:
            self._finished.set()
            changed, self._changed = self._changed, anyio.Event()
            changed.set()


def _step_event(seq: int, run_id: str, ev: StepEvent, now: float) -> RunEvent:
    error = None
    if ev.error is not None:
        error = {"message": ev.error.message, "stage": str(ev.error.stage),
                 "category": str(ev.error.category), "code": ev.error.code}
    outputs = {h: p.to_dict() for h, p in ev.outputs.items()} if ev.outputs else None
    return RunEvent(
        seq=seq, run_id=run_id, kind="step", status=str(ev.status), at=now,
        step_id=ev.step_id, block_id=ev.block_id, block_type=ev.block_type or None,
        retry_count=ev.retry_count, reason=ev.reason, error=error, outputs=outputs,
        loop_containers=[f.to_dict() for f in ev.scope])


def _run_event(seq: int, run_id: str, update: RunUpdate, now: float) -> RunEvent:
    error = None
    if update.error is not None:
        error = {"message": update.error.message, "stage": str(update.error.stage),
                 "category": str(update.error.category), "code": update.error.code}
    return RunEvent(
        seq=seq, run_id=run_id, kind="run", status=str(update.status), at=now,
        reason=update.reason, error=error, failing_step_id=update.failing_step_id,
        waiting_for=list(update.waiting_for_block_ids or []),
        final=update.status in _FINAL)
