"""Replay: rebuild a run's scheduler from persisted records instead of re-executing.

Resume and rerun both run a fresh :class:`~engine.scheduler.Scheduler` over the same
compiled graph. The scheduler is deterministic, so it proposes the same step ids again;
when it releases a step whose result is already recorded, the runner hands the recorded
result back (:meth:`Replay.settle`) instead of running the block, the way DBOS's
``check_existing_result`` does.

* **resume** (``rewrite=False``): the records are this run's own rows. Events for steps
  that are already in the database are filtered (:meth:`Replay.filter`): a completed step
  is never written or executed again; a step that was in flight (``queued``/``running``)
  goes back to ``queued`` (a retry) and runs again.
* **rerun** (``rewrite=True``): the records come from an earlier run and only cover the
  steps upstream of the rerun point; the new run writes them as its own steps.

A step waiting for review is replayed as waiting, then given its decision if one was
taken since (approve with optional corrected data, or reject).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks.base import BlockResult, LoopDecision
from engine.errors import ErrorCategory, ErrorStage
from engine.events import StepErrorInfo, StepEvent
from engine.scheduler import Scheduler, Task
from engine.values import LEGAL_MOVES, Payload, StepStatus
from store.base import PersistedStep

S = StepStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewDecision:
    """A human decision on a step waiting for review."""

    approved: bool
    data: Any = None
    has_data: bool = False
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class Replay:
    """Recorded step results a run reuses (see the module docstring)."""

    steps: Mapping[str, PersistedStep]
    rewrite: bool = False
    decisions: Mapping[str, ReviewDecision] = field(default_factory=dict)
    _db: dict[str, StepStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rewrite:
            self._db = {sid: rec.status for sid, rec in self.steps.items()}

    def settle(self, sched: Scheduler, task: Task) -> bool:
        """Feed ``task``'s recorded result to ``sched``; False when it must execute."""
        rec = self.steps.get(task.step_id)
        if rec is None or rec.status not in (S.COMPLETED, S.ERROR, S.AWAITING_REVIEW):
            return False
        sched.mark_running(task.step_id)
        if rec.status is S.COMPLETED:
            sched.complete(task.step_id, BlockResult(outputs=dict(rec.outputs),
                                                     control=_decode_control(rec.control)))
        elif rec.status is S.ERROR:
            sched.fail(task.step_id, _error_info(rec))
        else:
            review = (rec.control or {}).get("review") or {}
            sched.await_review(task.step_id, BlockResult(outputs=dict(rec.outputs),
                                                         review=review))
            decision = self.decisions.get(task.step_id)
            if decision is not None:
                apply_decision(sched, task.step_id, decision, rec.outputs)
        return True

    def filter(self, events: Iterable[StepEvent]) -> list[StepEvent]:
        """Drop the events a resumed run must not write again (resume mode only)."""
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
                kept.append(event)
            self._db[event.step_id] = event.status
        return kept


def apply_decision(sched: Scheduler, step_id: str, decision: ReviewDecision,
                   proposed: Mapping[str, Payload]) -> None:
    """Approve (with corrected data on the step's output) or reject a waiting step."""
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
