"""The scheduler: a pure state machine over one run of a compiled graph.

Theory of operation
-------------------
No I/O, no clock, no event loop. The runner drives it with four calls and persists what
it emits:

``start()``                   create the top-level steps (``pending``)
``take_ready() -> [Task]``    every step whose inputs are settled moves to ``queued``
``mark_running / complete / fail / retry``   report what happened to a task
``drain() -> [StepEvent]``    the transitions to persist, in order

A *scope* is one copy of a member set: the top level, or one iteration of a container.
Every edge joins two members of one scope (see engine.graph), so routing is local:

* a completed step delivers each fired output handle to its targets and *kills* each
  connected handle it did not fire (``branch_not_selected: block.handle``);
* a skipped or failed step kills all its connected outputs (``upstream_skipped: step``,
  ``upstream_error: step``); a kill remembers whether an error caused it;
* a step whose connected inputs are all settled is released, or skipped, by its
  :class:`~engine.contracts.blocks.JoinMode`.

Containers (engine.iteration) are steps too: their handler returns a control value
(items, or an initial state, with the loop's policy), the scheduler opens iteration
scopes through the sentinel members, and completes the container step when its loop
ends. What reaches a block whose role is ``end`` is a run output.

Every lifecycle move is checked against the table of
:func:`engine.contracts.values.check_move`: an illegal move raises before anything is
emitted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterator, Mapping
from dataclasses import replace
from typing import Any

from engine.compiled import CompiledGraph, Node
from engine.contracts.blocks import (
    OPENS_LOOP,
    BlockResult,
    BlockRole,
    JoinMode,
    LoopDecision,
    SentinelRole,
)
from engine.contracts.events import (
    InputRecord,
    RunUpdate,
    StepErrorInfo,
    StepEvent,
    input_record,
    step_event,
)
from engine.contracts.frozen import builder, record
from engine.contracts.values import (
    LEGAL_MOVES,
    LoopFrame,
    Payload,
    RunStatus,
    StepStatus,
    check_move,
    scope_prefix,
)
from engine.iteration import LoopController
from engine.scope import DeadInput, Scope, StepState

S = StepStatus
# Members read on every step, as module constants: reading an enum member through its
# class costs about ten times a global read.
_PENDING, _QUEUED, _RUNNING, _COMPLETED = S.PENDING, S.QUEUED, S.RUNNING, S.COMPLETED
_SENTINEL_START, _SENTINEL_END = SentinelRole.START, SentinelRole.END
_END_ROLE = BlockRole.END
#: What a finished cascade generator returns from ``next`` (see Scheduler._end_outputs).
_SETTLED = object()


@record
class Task:
    """A step released for execution."""

    step_id: str
    node: Node
    scope: tuple[LoopFrame, ...]
    inputs: dict[str, Payload]
    retry_count: int = 0




#: ``Task(**fields)``, about twice as fast (:func:`~engine.contracts.frozen.builder`).
_new_task = builder(Task)


class Scheduler:
    """Runs one workflow run as a state machine. See the module docstring."""

    def __init__(self, graph: CompiledGraph, recorded: Container[str] = frozenset()) -> None:
        self.graph = graph
        #: Step ids a resumed run finds in the database. Decisions that depend on timing
        #: follow them: a for_each opens an iteration the interrupted run had opened
        #: even after another iteration failed (engine.iteration).
        self.recorded = recorded
        self._outbox: list[StepEvent] = []
        self._ready: deque[StepState] = deque()
        self._live: dict[str, StepState] = {}
        self._top = Scope(())
        self._errors: list[tuple[str, StepErrorInfo]] = []
        self._cancelled: str | None = None
        self._awaiting: dict[str, StepState] = {}
        self._started = False
        self.end_outputs: dict[str, dict[str, Any]] = {}
        self._loops = LoopController(self)
        #: The innermost kill cascade's stack (see _end_outputs).
        self._cascade: list[Iterator[None]] = []
        #: True while a cascade's kill runs: the skip it causes joins that cascade.
        self._pushing = False
        #: The while_loop end sentinels created since the runner last took them (it may
        #: hold back their creation: Runner._defer_end_sentinels). A for_each opens
        #: iterations several at a time, so its end sentinels are seldom the last rows
        #: of a batch, and looking for them would cost every batch more than it saves.
        self.opened_ends: list[str] = []

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Create the top-level steps; those with no connected input become ready."""
        if self._started:
            return
        self._started = True
        self.open_scope(self._top, self.graph.members.get(None, ()), injected=None)

    def take_ready(self) -> list[Task]:
        """Move every released step to ``queued``.

        Returns:
            The released steps as tasks, in release order.
        """
        tasks: list[Task] = []
        while self._ready:
            step = self._ready.popleft()
            self._advance(step, _QUEUED, dict(step.arrived))
            tasks.append(self._task(step))
        return tasks

    def mark_running(self, step_id: str) -> None:
        """The runner started executing ``step_id`` (``queued -> running``).

        Raises:
            IllegalTransition: the step is not queued.
        """
        self._advance(self._live[step_id], _RUNNING)

    def retry(self, step_id: str, error: StepErrorInfo) -> Task:
        """A failed attempt will be retried: ``running -> queued``, retry_count + 1.

        Returns:
            The task to run again (``error`` is kept with the transition).
        """
        step = self._live[step_id]
        step.retry_count += 1
        self._move(step, S.QUEUED, error=error)
        return self._task(step)

    def continue_attempts(self, step_id: str, retry_count: int) -> Task:
        """A released step was interrupted in flight by a crash: count on from its
        persisted ``retry_count``, so attempt numbers and the attempt limit continue
        instead of starting over.

        Returns:
            The task to run (``retry_count`` never goes down).
        """
        step = self._live[step_id]
        step.retry_count = max(step.retry_count, retry_count)
        return self._task(step)

    def complete(self, step_id: str, result: BlockResult) -> None:
        """The step's handler returned ``result``; route its outputs.

        A container's control value (items, or an initial state) opens its loop instead:
        the container completes when the loop ends.

        Raises:
            IllegalTransition: the step is not running.
        """
        step = self._live[step_id]
        control = result.control
        if isinstance(control, OPENS_LOOP):
            step.result = result
            self._loops.open(step, control)
            return
        if step.node.sentinel_role is _SENTINEL_END:  # its loop reads the decision
            step.result = result
        self.finish(step, result)

    def await_review(self, step_id: str, result: BlockResult) -> None:
        """The step's output needs a human decision: ``running -> awaiting_review``.

        The proposed outputs are recorded now and flow on only when approved.
        """
        step = self._live[step_id]
        step.result = result
        self._move(step, S.AWAITING_REVIEW, outputs=result.outputs, artifact=result.artifact,
                   model=result.model, tokens=result.tokens, cost=result.cost,
                   control={"review": result.review or {}})
        self._awaiting[step_id] = step

    def approve(self, step_id: str, outputs: dict[str, Payload] | None = None) -> None:
        """Approve a waiting step, optionally replacing its outputs with corrected ones.

        A waiting container (split_by_key under review) opens its loop now.
        """
        step = self._awaiting.pop(step_id)
        result = step.result or BlockResult()
        if outputs is not None:
            result = BlockResult(outputs=outputs, artifact=result.artifact, model=result.model,
                                 tokens=result.tokens, cost=result.cost)
        elif isinstance(result.control, OPENS_LOOP):
            self._loops.open(step, result.control)
            return
        self.finish(step, result)

    def reject(self, step_id: str, reason: str) -> None:
        """Reject a waiting step: it ends ``cancelled``; what depends on it is skipped."""
        step = self._awaiting.pop(step_id)
        self._move(step, S.CANCELLED, reason=f"review rejected: {reason}" if reason
                   else "review rejected")
        self._end_outputs(step, DeadInput(f"review_rejected: {step.step_id}", False))

    @property
    def awaiting(self) -> list[tuple[str, str]]:
        """``(step_id, block_id)`` of every step waiting for a review decision."""
        return [(sid, st.node.id) for sid, st in self._awaiting.items()]

    def fail(self, step_id: str, error: StepErrorInfo) -> None:
        """The step failed for good (``running -> error``)."""
        self.fail_step(self._live[step_id], error)

    def note_error(self, step_id: str, error: StepErrorInfo) -> None:
        """Count a recorded error of a step this scheduler never created.

        A resumed run replays a failed container from its record without re-running its
        iterations; the error recorded inside it comes first, as it did in the original run.
        """
        self._errors.append((step_id, error))

    def cancel(self, reason: str) -> None:
        """Cancel every unfinished step; the run ends ``cancelled``."""
        if self._cancelled is not None:
            return
        self._cancelled = reason
        self._ready.clear()
        self._awaiting.clear()
        for step in list(self._live.values()):
            if not step.status.terminal:
                self._move(step, S.CANCELLED, reason=reason)
                self._settle_terminal(step)

    def release(self) -> None:
        """Let go of the steps' records once the run's last events are drained.

        A scope and its steps point at each other; a finished iteration lets go of its
        steps at once (``_settle_terminal``), and this does the same for the top level, so
        a finished run is freed when the runner drops it instead of waiting for the cyclic
        collector. Only :attr:`end_outputs` and the counters stay readable.
        """
        self._top.steps.clear()
        self._live.clear()
        self._awaiting.clear()
        self._ready.clear()

    def drain(self) -> list[StepEvent]:
        """Hand over (and forget) the events emitted since the last drain."""
        out, self._outbox = self._outbox, []
        return out

    @property
    def finished(self) -> bool:
        """True once every step of the run is terminal."""
        return self._started and self._top.open == 0

    @property
    def has_ready(self) -> bool:
        """True when take_ready() would return tasks."""
        return bool(self._ready)

    def outcome(self) -> RunUpdate:
        """The run's lifecycle now: final once ``finished``, else waiting for reviews."""
        if self._awaiting and not self.finished:
            blocks = sorted({st.node.id for st in self._awaiting.values()})
            return RunUpdate(status=RunStatus.AWAITING_REVIEW, waiting_for_block_ids=blocks)
        if self._cancelled is not None:
            return RunUpdate(status=RunStatus.CANCELLED, reason=self._cancelled)
        if self._errors:
            sid = self.root_error(self._errors[0][0])
            info = next(e for s, e in self._errors if s == sid)
            return RunUpdate(status=RunStatus.ERROR, failing_step_id=sid, error=info,
                             outputs=self.end_outputs or None)
        return RunUpdate(status=RunStatus.COMPLETED, outputs=self.end_outputs)

    # ------------------------------------------------------------------ used by
    # engine.iteration (the loop half of the same state machine)

    def open_scope(
        self, scope: Scope, members: tuple[str, ...], injected: tuple[str, Payload] | None,
        extra: Mapping[str, Payload] | None = None,
    ) -> None:
        """Create a step per member of ``scope`` (node ids in topological order).

        ``injected`` is the ``(handle, payload)`` an iteration's sentinel start receives;
        ``extra`` more handle payloads it receives beside it (a while_loop's loop context).
        """
        created: list[StepState] = []
        nodes, incoming = self.graph.nodes, self.graph.incoming
        # step_id_for(node_id, frames), with the scope's prefix built once for all members
        prefix = scope_prefix(scope.frames)
        for node_id in members:
            node = nodes[node_id]
            waiting = len(incoming.get(node_id, ()))
            step = StepState(prefix + node_id, node, scope, waiting)
            scope.steps[node_id] = step
            scope.open += 1
            self._live[step.step_id] = step
            self._created(step, scope.frames)
            created.append(step)
            if node.sentinel_role is _SENTINEL_END and not scope.frames[-1].is_parallel:
                self.opened_ends.append(step.step_id)
        for step in created:
            if step.node.sentinel_role is _SENTINEL_START and injected is not None:
                handle, payload = injected
                step.arrived[handle] = InputRecord(payload=payload)
                for name, value in (extra or {}).items():
                    step.arrived[name] = InputRecord(payload=value)
                self._ready.append(step)
            elif step.waiting == 0 and step.status is _PENDING:
                self._settle_inputs(step)

    def finish(self, step: StepState, result: BlockResult) -> None:
        """Complete ``step`` with ``result``: deliver fired outputs, kill unfired ones."""
        outputs = result.outputs
        control = None
        if isinstance(result.control, LoopDecision):  # resume must reproduce the decision
            control = {"loop_decision": {"matched": result.control.matched,
                                         "evaluations": result.control.evaluations}}
        self._advance(step, _COMPLETED, None, result, control)
        node = step.node
        if node.role is _END_ROLE:
            self.end_outputs[step.step_id] = {
                h: rec.payload.to_dict() for h, rec in step.arrived.items()
            }
        for handle, edges in self.graph.outgoing.get(node.id, {}).items():
            payload = outputs.get(handle)
            for edge in edges:
                target = step.scope.steps[edge.target]
                if payload is not None:
                    target.arrived[edge.target_handle] = input_record(
                        payload=payload, source_step=step.step_id, source_handle=handle)
                    self._input_settled(target)
                else:
                    dead = DeadInput(f"{node.unfired_reason}: {node.id}.{handle}", False)
                    self._kill(target, edge.target_handle, dead)
        self._settle_terminal(step)

    def fail_step(self, step: StepState, error: StepErrorInfo) -> None:
        """Move ``step`` to ``error`` and skip what depends on it.

        Args:
            step: the failing step.
            error: the error it ends with (the run's first error fails the run).
        """
        inner = step.step_id + "_iter_"
        first = next((sid for sid, _ in self._errors if sid.startswith(inner)), None)
        if first is not None and "first_error_step_id" not in error.context:
            # A container failed by its iterations names the first error inside it, so a
            # resume that replays the container's recorded error fails the run on that
            # same step (Replay.settle) instead of on the container.
            error = replace(error, context={**error.context, "first_error_step_id": first})
        self._move(step, S.ERROR, error=error)
        self._errors.append((step.step_id, error))
        if step.scope.error_step is None:
            step.scope.error_step = step.step_id
        self._end_outputs(step, DeadInput(f"upstream_error: {step.step_id}", True))

    def root_error(self, step_id: str) -> str:
        """The step a run failing on ``step_id``'s error names: inside a failed for_each,
        the error of its lowest failed item (the container's ``first_error_step_id``),
        not whichever iteration failed first in time, so that a resumed run, whose
        recorded steps settle at once, names the same step as an uninterrupted one."""
        for sid, info in sorted(self._errors, key=lambda pair: len(pair[0])):  # outer first
            first = info.context.get("first_error_step_id")
            if (isinstance(first, str) and first != step_id
                    and step_id.startswith(sid + "_iter_")
                    and any(s == first for s, _ in self._errors)):
                return self.root_error(first)
        return step_id

    def absorb_errors(self, frames: tuple[LoopFrame, ...]) -> None:
        """Forget errors inside ``frames`` (a for_each with ``on_item_error: skip``)."""
        prefix = scope_prefix(frames)
        self._errors = [(sid, e) for sid, e in self._errors if not sid.startswith(prefix)]

    @property
    def cancelled(self) -> bool:
        """True once cancel() was called."""
        return self._cancelled is not None

    # ------------------------------------------------------------------ routing

    def _task(self, step: StepState) -> Task:
        return _new_task(step_id=step.step_id, node=step.node, scope=step.scope.frames,
                    inputs={h: r.payload for h, r in step.arrived.items()},
                    retry_count=step.retry_count)

    def _input_settled(self, step: StepState) -> None:
        step.waiting -= 1
        if step.waiting == 0 and step.status is _PENDING:
            self._settle_inputs(step)

    def _kill(self, step: StepState, handle: str, dead: DeadInput) -> None:
        step.dead[handle] = dead
        self._input_settled(step)

    def _end_outputs(self, step: StepState, dead: DeadInput) -> None:
        """Kill every connected output of ``step``, which has just ended without firing
        them, then settle it in its scope.

        A kill can skip its target, whose outputs are killed in turn: a long line of
        blocks behind a failed one skips each of them. The skip a kill causes is the last
        thing that kill does, so instead of recursing it hands its own kills to the loop
        below (:attr:`_pushing`), which runs them before the next kill of the step that
        caused it: depth first, in the order a recursion would take, however long the
        line. Any other caller (a failed step, a container ended inside a cascade) runs
        its kills to the end before it returns, as it expects.
        """
        work = self._kills_then_settle(step, dead)
        if self._pushing:
            self._pushing = False
            self._cascade.append(work)
            return
        outer, stack = self._cascade, [work]
        self._cascade = stack
        try:
            while stack:
                if next(stack[-1], _SETTLED) is _SETTLED:
                    stack.pop()
        finally:
            self._cascade = outer

    def _kills_then_settle(self, step: StepState, dead: DeadInput) -> Iterator[None]:
        """One kill per connected output edge (a skip it causes pushes the target's own
        kills, which run before the next one), then ``step`` settles."""
        for edges in self.graph.outgoing.get(step.node.id, {}).values():
            for edge in edges:
                self._pushing = True
                try:
                    self._kill(step.scope.steps[edge.target], edge.target_handle, dead)
                finally:
                    self._pushing = False
                yield
        self._settle_terminal(step)

    def _settle_inputs(self, step: StepState) -> None:
        """All connected inputs are settled: release or skip by join mode."""
        if self._cancelled is not None:
            return
        if not step.dead:  # every input arrived: released whatever the join mode
            self._ready.append(step)
            return
        dead = self._first_dead(step)
        error_dead = self._first_dead(step, by_error=True)
        mode = step.node.join
        if mode is JoinMode.ALL:
            skip = dead
        elif mode is JoinMode.ANY:
            skip = None if step.arrived else dead
        elif mode is JoinMode.ANY_NO_FAIL:
            skip = error_dead or (None if step.arrived else dead)
        else:  # SETTLED
            skip = error_dead
        if skip is None:
            self._ready.append(step)
        else:
            self._skip(step, skip)

    def _first_dead(self, step: StepState, *, by_error: bool = False) -> DeadInput | None:
        """The dead input of lowest handle order (deterministic whatever the arrival order)."""
        if not step.dead:
            return None
        ordered = [step.dead[h] for h in step.node.inputs if h in step.dead]
        ordered += [d for h, d in sorted(step.dead.items()) if h not in step.node.inputs]
        for dead in ordered:
            if dead.by_error or not by_error:
                return dead
        return None

    def _skip(self, step: StepState, cause: DeadInput) -> None:
        self._move(step, S.SKIPPED, reason=cause.reason)
        tainted = cause.by_error or any(d.by_error for d in step.dead.values())
        self._end_outputs(step, DeadInput(f"upstream_skipped: {step.step_id}", tainted))

    def _settle_terminal(self, step: StepState) -> None:
        scope = step.scope
        scope.open -= 1
        if scope.open == 0 and scope.loop is not None:
            for sid in [s.step_id for s in scope.steps.values()]:
                self._live.pop(sid, None)
            self._loops.iteration_done(scope)
            # Its steps point at the scope: let go of them here, so the iteration is
            # freed now rather than left to the cyclic collector.
            scope.steps.clear()

    def _move(
        self, step: StepState, status: StepStatus, *,
        inputs: dict[str, InputRecord] | None = None,
        outputs: dict[str, Payload] | None = None, error: StepErrorInfo | None = None,
        reason: str | None = None, artifact: dict[str, Any] | None = None,
        model: str | None = None, tokens: dict[str, int] | None = None,
        cost: dict[str, Any] | None = None, trace_spans: list[dict[str, Any]] | None = None,
        control: dict[str, Any] | None = None,
    ) -> None:
        """Move ``step`` to ``status`` and queue its event with these fields. Named, not
        ``**fields``: a dict packed per move and unpacked again costs half the event."""
        if status not in LEGAL_MOVES[step.status]:  # the table check_move reads, inlined
            check_move(step.step_id, step.status, status)  # raises IllegalTransition
        step.status = status
        node = step.node
        self._outbox.append(step_event(
            step_id=step.step_id, block_id=node.id, block_type=node.type, label=node.label,
            status=status, retry_count=step.retry_count, inputs=inputs, outputs=outputs,
            error=error, reason=reason, artifact=artifact, model=model, tokens=tokens,
            cost=cost, trace_spans=trace_spans, control=control))

    def _advance(self, step: StepState, status: StepStatus,
                 inputs: dict[str, InputRecord] | None = None,
                 result: BlockResult | None = None,
                 control: dict[str, Any] | None = None) -> None:
        """:meth:`_move` for a step's three usual moves: its release (with ``inputs``),
        its start, and its completion (with ``result`` and ``control``). The event
        builder is called with the fields each move can carry only: every keyword
        passed costs the call, and sixteen cost twice what seven do."""
        if status not in LEGAL_MOVES[step.status]:
            check_move(step.step_id, step.status, status)  # raises IllegalTransition
        step.status = status
        node = step.node
        if result is None:
            self._outbox.append(step_event(
                step_id=step.step_id, block_id=node.id, block_type=node.type,
                label=node.label, status=status, retry_count=step.retry_count, inputs=inputs))
        else:
            self._outbox.append(step_event(
                step_id=step.step_id, block_id=node.id, block_type=node.type,
                label=node.label, status=status, retry_count=step.retry_count,
                outputs=result.outputs, artifact=result.artifact, model=result.model,
                tokens=result.tokens, cost=result.cost, trace_spans=result.trace_spans,
                control=control))

    def _created(self, step: StepState, scope: tuple[LoopFrame, ...]) -> None:
        """Queue the creation (``pending``) of ``step``, in the loop frames ``scope``."""
        node = step.node
        self._outbox.append(step_event(
            step_id=step.step_id, block_id=node.id, block_type=node.type, label=node.label,
            status=_PENDING, scope=scope))
