"""Loop containers inside the sans-IO scheduler.

A container step runs its handler like any block; the handler returns a control value
that carries the loop's policy too, so the engine never reads block config:

* ``ExpandItems(items, max_concurrency, on_item_error)`` (for_each): iteration ``i``
  is a new scope whose sentinel start receives ``items[i]``. At most
  ``max_concurrency`` iterations are open at a time, so memory stays flat however many
  items there are; closed scopes are dropped. When the last iteration closes, the
  container step completes with ``fe-right-out`` = the list of each iteration's
  ``fe-right-in`` payload, in item order (``null`` where nothing arrived). A failed
  iteration stops new ones from opening; once the open ones settle the container fails
  (``on_item_error: fail``, naming the lowest failed item), or the item becomes ``null``
  (``on_item_error: skip``, and the error no longer fails the run). Which iterations had opened when the failure
  came depends on timing; a resumed run, whose recorded steps settle at once, opens
  the ones its record holds too, so that none is left unfinished in the database.
* ``LoopStart(state, max_iterations)`` (while_loop, do-while): iteration 0 receives
  ``state``. When an iteration closes, its sentinel end's ``LoopDecision`` says whether
  the termination condition matched. Match ends the loop (``condition_matched``);
  reaching ``max_iterations`` ends it too (``max_iterations_reached``, a normal
  completion); otherwise the iteration's ``loop-right-in`` payload is the next state.

An iteration is closed when *every* step in its scope is terminal, not only the
sentinel end, so side branches inside the body finish first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.contracts.blocks import (
    LOOP_CONTEXT_HANDLE,
    BlockResult,
    ExpandItems,
    LoopDecision,
    LoopStart,
    SentinelRole,
    sentinel_id,
)
from engine.contracts.errors import ErrorCategory, ErrorStage
from engine.contracts.events import StepErrorInfo
from engine.contracts.values import TERMINAL, LoopFrame, Payload, step_id_for
from engine.reduce import reduce_results
from engine.scope import Scope, StepState

if TYPE_CHECKING:
    from engine.scheduler import Scheduler


@dataclass(slots=True, kw_only=True)
class ForEachLoop:
    """A for_each container's loop in progress.

    Attributes:
        step: the container step.
        items: the items not yet handed to an iteration (released ones are cleared).
        max_concurrency: iterations open at once.
        on_item_error: ``fail`` or ``skip`` (see the module docstring).
        end_id: the node id of the container's sentinel end.
        control: the handler's control value (its reduce policy and item keys).
        results: each iteration's collected payload, in item order.
        next: the index of the next item to open.
        active: iterations open now.
        failure: ``(index, failing step id)`` of the first failed iteration.
    """

    step: StepState
    items: list[Payload]
    max_concurrency: int
    on_item_error: str
    end_id: str
    control: ExpandItems
    results: list[Any] = field(default_factory=list)
    next: int = 0
    active: int = 0
    failure: tuple[int, str] | None = None


@dataclass(slots=True, kw_only=True)
class WhileLoop:
    """A while_loop container's loop in progress.

    Attributes:
        step: the container step.
        state: the payload the next iteration receives.
        max_iterations: the bound; reaching it completes the loop normally.
        end_id: the node id of the container's sentinel end.
        inject_context: hand each iteration the previous evaluations (``loop-context``).
        iteration: the index of the iteration running now.
        evaluations: the last termination-condition evaluations.
    """

    step: StepState
    state: Payload
    max_iterations: int
    end_id: str
    inject_context: bool = False
    iteration: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)


class LoopController:
    """Opens and closes iteration scopes for a :class:`~engine.scheduler.Scheduler`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._s = scheduler

    def open(self, step: StepState, control: ExpandItems | LoopStart) -> None:
        """Start the loop of container ``step`` from its handler's control value.

        Args:
            step: the container step (running, or approved after a review).
            control: the items and policy of a for_each, or the initial state and bound
                of a while_loop.
        """
        end_id = sentinel_id(step.node.id, SentinelRole.END)
        if isinstance(control, ExpandItems):
            items = list(control.items)
            loop = ForEachLoop(step=step, items=items, results=[None] * len(items),
                               max_concurrency=max(1, control.max_concurrency),
                               on_item_error=control.on_item_error, end_id=end_id,
                               control=replace(control, items=[]))
            if not items:
                self._complete_for_each(loop)
                return
            self._fill(loop)
        else:
            loop_w = WhileLoop(step=step, state=control.state, end_id=end_id,
                               max_iterations=max(1, control.max_iterations),
                               inject_context=control.inject_context)
            self._spawn(loop_w, 0, control.state, "loop-left-in", parallel=False)

    def iteration_done(self, scope: Scope) -> None:
        """Every step of iteration ``scope`` is terminal: record it and move the loop on.

        Args:
            scope: the closed iteration scope (its ``loop`` is set).
        """
        loop = scope.loop
        assert loop is not None
        if loop.step.status in TERMINAL or self._s.cancelled:
            return
        if isinstance(loop, ForEachLoop):
            self._for_each_done(loop, scope)
        else:
            self._while_done(loop, scope)

    # ------------------------------------------------------------------ for_each

    def _fill(self, loop: ForEachLoop) -> None:
        """Open iterations up to ``max_concurrency``; after a failure, only those a resumed
        run finds recorded (the interrupted run opened them before it saw the failure)."""
        while loop.active < loop.max_concurrency and loop.next < len(loop.items):
            index = loop.next
            if loop.failure is not None and not self._opened_before(loop, index):
                return
            loop.next += 1
            loop.active += 1
            item = loop.items[index]
            loop.items[index] = _RELEASED  # the iteration holds it now; keep memory flat
            self._spawn(loop, index, item, "fe-left-in", parallel=loop.max_concurrency > 1)

    def _for_each_done(self, loop: ForEachLoop, scope: Scope) -> None:
        loop.active -= 1
        node_id = loop.step.node.id
        if scope.error_step is not None:
            if loop.on_item_error == "skip":
                self._s.absorb_errors(scope.frames)
                loop.results[scope.index] = None
            elif loop.failure is None or scope.index < loop.failure[0]:
                # the lowest failed item, whatever order the iterations ended in
                loop.failure = (scope.index, scope.error_step)
        else:
            end = scope.steps[loop.end_id]
            record = end.arrived.get("fe-right-in")
            loop.results[scope.index] = _jsonable(record.payload) if record else None
        self._fill(loop)
        if loop.active == 0 and (loop.failure is not None or loop.next >= len(loop.items)):
            if loop.failure is not None:
                index, failing = loop.failure
                error = container_error(
                    f"for_each {node_id!r}: iteration {index} failed at step {failing!r}. "
                    "Fix that step, or set on_item_error: skip to put null for failed items.",
                    "ITERATION_FAILED")
                self._s.fail_step(loop.step, replace(
                    error, context={"first_error_step_id": self._s.root_error(failing)}))
            else:
                self._complete_for_each(loop)

    def _complete_for_each(self, loop: ForEachLoop) -> None:
        # The container's own result (a split_by_key partition artifact, its model usage)
        # was kept on the step when the loop opened; completion adds fe-right-out to it.
        own = loop.step.result or BlockResult()
        policy = loop.control
        fires, value = reduce_results(loop.results, policy.reduce_strategy,
                                      data_key=policy.reduce_data_key,
                                      item_key=policy.reduce_item_key, keys=policy.item_keys)
        reduced = {"fe-right-out": Payload.json(value)} if fires else {}
        self._s.finish(loop.step, BlockResult(
            outputs={**own.outputs, **reduced},
            artifact=own.artifact, model=own.model, tokens=own.tokens, cost=own.cost,
            trace_spans=own.trace_spans))

    def _opened_before(self, loop: ForEachLoop, index: int) -> bool:
        """True when the record a run resumes from holds iteration ``index`` of ``loop``."""
        recorded = self._s.recorded
        if not recorded:
            return False
        start = sentinel_id(loop.step.node.id, SentinelRole.START)
        frames = _iteration_frames(loop.step, index, parallel=loop.max_concurrency > 1)
        return step_id_for(start, frames) in recorded

    # ------------------------------------------------------------------ while_loop

    def _while_done(self, loop: WhileLoop, scope: Scope) -> None:
        node_id = loop.step.node.id
        if scope.error_step is not None:
            self._s.fail_step(loop.step, container_error(
                f"while_loop {node_id!r}: iteration {loop.iteration} failed at step "
                f"{scope.error_step!r}. Fix that step; the loop stops on the first error.",
                "ITERATION_FAILED"))
            return
        end = scope.steps[loop.end_id]
        decision = end.result.control if end.result is not None else None
        state = end.arrived.get("loop-right-in")
        if state is not None:
            loop.state = state.payload
        if isinstance(decision, LoopDecision):
            loop.evaluations = decision.evaluations
            if decision.matched:
                self._complete_while(loop, "condition_matched")
                return
        if loop.iteration + 1 >= loop.max_iterations:
            self._complete_while(loop, "max_iterations_reached")
        elif state is None:
            self._s.fail_step(loop.step, container_error(
                f"while_loop {node_id!r}: iteration {loop.iteration} produced no "
                "loop-right-in payload, so there is no state for the next iteration. "
                "Wire the body's last block to loop-right-in on every path.",
                "LOOP_STATE_MISSING"))
        else:
            loop.iteration += 1
            self._spawn(loop, loop.iteration, loop.state, "loop-left-in", parallel=False)

    def _complete_while(self, loop: WhileLoop, reason: str) -> None:
        artifact = {
            "operation": "while_loop_termination",
            "termination_reason": reason,
            "iterations": loop.iteration + 1,
            "max_iterations": loop.max_iterations,
            "evaluations": loop.evaluations,
        }
        self._s.finish(loop.step, BlockResult(outputs={"loop-right-out": loop.state},
                                              artifact=artifact))

    # ------------------------------------------------------------------ shared

    def _spawn(self, loop: ForEachLoop | WhileLoop, index: int, item: Payload, handle: str,
               *, parallel: bool) -> None:
        step = loop.step
        scope = Scope(_iteration_frames(step, index, parallel=parallel), loop=loop, index=index)
        extra = None
        if isinstance(loop, WhileLoop) and loop.inject_context:
            extra = {LOOP_CONTEXT_HANDLE: Payload.json({"evaluations": loop.evaluations})}
        self._s.open_scope(scope, self._s.graph.members.get(step.node.id, ()), (handle, item),
                           extra)


_RELEASED = Payload.json(None)


def _iteration_frames(step: StepState, index: int, *, parallel: bool) -> tuple[LoopFrame, ...]:
    """The frames of iteration ``index`` of container ``step``'s loop."""
    frame = LoopFrame(container_id=step.node.id, iteration=index, is_parallel=parallel,
                      parallel_item_index=index if parallel else None)
    return step.scope.frames + (frame,)


def container_error(message: str, code: str) -> StepErrorInfo:
    """The error a container step ends with when one of its iterations failed.

    Args:
        message: what failed and what to do about it.
        code: the error code (``ITERATION_FAILED``, ``LOOP_STATE_MISSING``).

    Returns:
        A permanent execution error.
    """
    return StepErrorInfo(message=message, stage=ErrorStage.EXECUTION,
                         category=ErrorCategory.PERMANENT, code=code)


def _jsonable(payload: Payload) -> Any:
    if payload.kind == "file":
        return payload.to_dict()["document"]
    return payload.data
