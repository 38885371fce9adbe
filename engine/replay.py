"""Replay: rebuild a run's scheduler from persisted records instead of re-executing.

Resume and rerun both run a fresh :class:`~engine.scheduler.Scheduler` over the same
compiled graph. The scheduler is deterministic, so it proposes the same step ids again;
when it releases a step whose result is already recorded, the runner hands the recorded
result back (:meth:`Replay.settle`) instead of running the block, the way DBOS's
``check_existing_result`` does.

* **resume** (``rewrite=False``): the records are this run's own rows. Events for steps
  that are already in the database are filtered (:meth:`Replay.filter`): a completed step
  is never written or executed again; a step that was in flight (``queued``/``running``)
  goes back to ``queued`` and runs again, its attempt count continuing from the record
  (:meth:`Replay.attempt`): a ``running`` step re-queued counts as one more retry
  (``running -> queued`` is always ``+ 1``), so the attempt limit holds across crashes
  and the persisted count never goes down.
* **rerun** (``rewrite=True``): the records come from an earlier run and only cover the
  steps upstream of the rerun point; the new run writes them as its own steps.

A step waiting for review is replayed as waiting, then given its decision if one was
taken since (approve with optional corrected data, or reject). A container waiting for
review has no outputs yet; on approval its block type rebuilds the result to resume with
(``BlockType.result_after_review``: a split_by_key for_each cuts the approved partitions
from the source PDF in the run's file store) and its iterations start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from engine.contracts.blocks import BlockResult, LoopDecision, ReviewDecision
from engine.contracts.errors import ErrorCategory, ErrorStage, UsageError
from engine.contracts.events import StepErrorInfo, StepEvent
from engine.contracts.files import FileStore
from engine.contracts.store import PersistedStep
from engine.contracts.values import LEGAL_MOVES, Payload, StepStatus
from engine.scheduler import Scheduler, Task

S = StepStatus


@dataclass(slots=True, kw_only=True)
class Replay:
    """Recorded step results a run reuses (see the module docstring)."""

    steps: Mapping[str, PersistedStep]
    rewrite: bool = False
    decisions: Mapping[str, ReviewDecision] = field(default_factory=dict)
    files: FileStore | None = None
    _db: dict[str, StepStatus] = field(default_factory=dict)
    _retry_offset: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rewrite:
            return
        self._db = {sid: rec.status for sid, rec in self.steps.items()}
        for sid, rec in self.steps.items():
            offset = rec.retry_count + (1 if rec.status is S.RUNNING else 0)
            if offset and not rec.status.terminal:
                self._retry_offset[sid] = offset

    def settle(self, sched: Scheduler, task: Task) -> bool:
        """Feed ``task``'s recorded result to ``sched``.

        Args:
            sched: the scheduler that released ``task``.
            task: a released step.

        Returns:
            False when nothing final is recorded for the step, so it must execute.

        Raises:
            UsageError: an approved review must be resumed but the replay has no file
                store, or the block type cannot rebuild the approved result.
        """
        rec = self.steps.get(task.step_id)
        if rec is None or rec.status not in (S.COMPLETED, S.ERROR, S.AWAITING_REVIEW):
            return False
        sched.mark_running(task.step_id)
        if rec.status is S.COMPLETED:
            sched.complete(task.step_id, BlockResult(outputs=dict(rec.outputs),
                                                     control=_decode_control(rec.control)))
        elif rec.status is S.ERROR:
            self._note_inner_error(sched, rec)
            sched.fail(task.step_id, _error_info(rec))
        else:
            self._settle_review(sched, task, rec)
        return True

    def _note_inner_error(self, sched: Scheduler, rec: PersistedStep) -> None:
        """Count the recorded first error inside a failed container before the container's."""
        context = ((rec.error or {}).get("details") or {}).get("context") or {}
        inner = self.steps.get(context.get("first_error_step_id") or "")
        if inner is not None and inner.status is S.ERROR:
            self._note_inner_error(sched, inner)
            sched.note_error(inner.step_id, _error_info(inner))

    def _settle_review(self, sched: Scheduler, task: Task, rec: PersistedStep) -> None:
        """Replay a step recorded as waiting for review, with its decision if one exists."""
        review = (rec.control or {}).get("review") or {}
        decision = self.decisions.get(task.step_id)
        if decision is not None and decision.approved:
            if self.files is None:
                raise UsageError("Replay needs the run's file store to resume an approved "
                                 "review; pass Replay(files=store.files).")
            node = task.node
            resumed = node.impl.result_after_review(node.config, self.files, review, decision)
            if resumed is not None:  # a container: its iterations start now
                sched.await_review(task.step_id, resumed)
                sched.approve(task.step_id)
                return
        sched.await_review(task.step_id, BlockResult(outputs=dict(rec.outputs), review=review))
        if decision is not None:
            apply_decision(sched, task.step_id, decision, rec.outputs)

    def attempt(self, sched: Scheduler, task: Task) -> Task:
        """The task to execute for a released step that :meth:`settle` did not settle.

        A step that was in flight at the crash continues its attempt count: a ``queued``
        step (waiting for a retry) keeps its persisted ``retry_count``; a ``running`` one
        counts the interrupted attempt as spent (``+ 1``).
        """
        floor = self._retry_offset.get(task.step_id, 0)
        return sched.continue_attempts(task.step_id, floor) if floor else task

    def filter(self, events: Iterable[StepEvent]) -> list[StepEvent]:
        """Drop the events a resumed run must not write again (resume mode only).

        Args:
            events: what the scheduler emitted, in order.

        Returns:
            The events to persist, with retry counts shifted past the recorded ones.
        """
        if self.rewrite:
            return list(events)
        kept: list[StepEvent] = []
        for event in events:
            current = self._db.get(event.step_id)
            if current is None:
                kept.append(event)
            elif current.terminal or event.status not in LEGAL_MOVES[current]:
                continue
            else:
                floor = self._retry_offset.get(event.step_id, 0)
                kept.append(replace(event, retry_count=floor)
                            if event.retry_count < floor else event)
            self._db[event.step_id] = event.status
        return kept


def apply_decision(sched: Scheduler, step_id: str, decision: ReviewDecision,
                   proposed: Mapping[str, Payload]) -> None:
    """Approve (with corrected data on the step's output) or reject a waiting step.

    Args:
        sched: the scheduler holding the waiting step.
        step_id: the step waiting for review.
        decision: the human decision.
        proposed: the step's proposed outputs; corrected data replaces its JSON ones.
    """
    if not decision.approved:
        sched.reject(step_id, decision.reason)
        return
    outputs = None
    if decision.has_data:
        outputs = {h: (Payload.json(decision.data) if p.kind == "json" else p)
                   for h, p in proposed.items()} or {"output-json-0": Payload.json(decision.data)}
    sched.approve(step_id, outputs)


def _decode_control(raw: Mapping[str, Any] | None) -> Any:
    if raw and "loop_decision" in raw:
        data = raw["loop_decision"]
        return LoopDecision(matched=bool(data.get("matched")),
                            evaluations=list(data.get("evaluations") or []))
    return None


def _error_info(rec: PersistedStep) -> StepErrorInfo:
    raw = rec.error or {}
    details = raw.get("details") or {}
    return StepErrorInfo(
        message=raw.get("message") or f"step {rec.step_id} failed in an earlier attempt",
        stage=ErrorStage(raw.get("stage") or ErrorStage.EXECUTION),
        category=ErrorCategory(raw.get("category") or ErrorCategory.PERMANENT),
        code=details.get("error_code") or "BLOCK_ERROR",
        stack_trace=details.get("stack_trace"),
        context=details.get("context") or {})
