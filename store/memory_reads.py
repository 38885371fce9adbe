"""The read queries of the memory store: :class:`~engine.contracts.store.ReadStore` in Python.

Each query filters the rows of :class:`~store.memory_rows.Tables` with the meaning the
SQLite store gives its SQL (:mod:`store.sqlite_query`), then pages them with
:func:`keyset_page`, the same keyset rules on a sorted list. Records are built fresh
for every answer, so callers never share the store's state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from engine.contracts.errors import NotFoundError
from engine.contracts.reads import (
    ArtifactRecord,
    DecisionStatus,
    RecordPage,
    ReviewEntry,
    ReviewFilters,
    RunFilters,
    RunRecord,
    StepFilters,
    StepRecord,
    ambiguous_step,
    artifact_not_found,
    check_page,
    review_entry_not_found,
    step_cursor_not_found,
    step_not_found,
)
from engine.contracts.records import Review
from store.memory_outline import MemoryOutline
from store.memory_rows import RunRow, StepRow, Tables

R = TypeVar("R")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_FINISHED = frozenset({"cancelled", "completed", "error"})


def keyset_page(rows: Iterable[R], key: Callable[[R], Any], cursor: Any, *, forward: bool,
                limit: int, descending: bool) -> tuple[list[R], bool, bool]:
    """One page of ``rows`` past (``forward``) or before the key ``cursor`` in list order.

    Returns:
        The page in list order, and whether rows exist before and after it.
    """
    ordered = sorted(rows, key=key, reverse=descending)

    def later(a: Any, b: Any) -> bool:
        return bool(a < b) if descending else bool(a > b)

    if forward:
        tail = [r for r in ordered if cursor is None or later(key(r), cursor)]
        page = tail[:limit]
        if not page:
            return [], False, False
        first = key(page[0])
        return page, any(later(first, key(r)) for r in ordered), len(tail) > limit
    head = [r for r in ordered if later(cursor, key(r))]
    page = head[-limit:]
    if not page:
        return [], False, False
    last = key(page[-1])
    return page, len(head) > limit, any(later(key(r), last) for r in ordered)


def _run_matches(run: RunRow, f: RunFilters) -> bool:
    status = run.status.value
    checks = (
        not f.statuses or status in f.statuses,
        not f.exclude_statuses or status not in f.exclude_statuses,
        f.workflow_id is None or run.workflow_id == f.workflow_id,
        not f.trigger_types or run.trigger in f.trigger_types,
        f.created_from is None or run.created_at >= f.created_from,
        f.created_to is None or run.created_at < f.created_to,
        _duration_in(run, f.min_duration_ms, f.max_duration_ms),
        not f.search or any(f.search.translate(_ASCII_LOWER) in text.translate(_ASCII_LOWER)
                            for text in (run.id, run.workflow_id, run.workflow_name)),
        all(run.metadata.get(k) == v for k, v in f.metadata.items()),
    )
    return all(checks)


def _duration_in(run: RunRow, low: int | None, high: int | None) -> bool:
    if low is None and high is None:
        return True
    if run.completed_at is None or run.started_at is None:
        return False
    ms = (run.completed_at - run.started_at) * 1000.0
    return (low is None or ms >= low) and (high is None or ms <= high)


def _step_matches(step: StepRow, f: StepFilters) -> bool:
    return ((f.block_id is None or step.block_id == f.block_id)
            and (f.step_id is None or step.step_id == f.step_id)
            and (not f.block_types or step.block_type in f.block_types)
            and (not f.statuses or step.status.value in f.statuses))


def _decision_matches(status: str, entry: ReviewEntry) -> bool:
    undecided = entry.decision is None
    return {
        DecisionStatus.PENDING: undecided and entry.run_status not in _FINISHED,
        DecisionStatus.APPROVED: entry.decision == "approved",
        DecisionStatus.REJECTED: entry.decision == "rejected",
        DecisionStatus.DECIDED: not undecided,
        DecisionStatus.CANCELLED: undecided and entry.run_status in _FINISHED,
        DecisionStatus.ALL: True,
    }[DecisionStatus(status)]


class MemoryReads(MemoryOutline):
    """Read queries over :class:`~store.memory_rows.Tables`; mixed into
    :class:`store.memory.MemoryStore`."""

    tables: Tables

    # ------------------------------------------------------------------ runs

    def _run(self, run_id: str, organization_id: str | None) -> RunRow:
        run = self.tables.runs.get(run_id)
        if run is None or organization_id not in (None, run.organization_id):
            raise NotFoundError("run", run_id)
        return run

    def read_run(self, run_id: str, *, organization_id: str | None = None) -> RunRecord:
        """One run. Raises NotFoundError (also for another organization's run)."""
        with self.tables.lock:
            return _run_record(self._run(run_id, organization_id))

    def page_runs(self, filters: RunFilters, *, organization_id: str | None = None,
                  limit: int = 20, after: str | None = None, before: str | None = None,
                  descending: bool = True) -> RecordPage[RunRecord]:
        """One page of matching runs by ``(created_at, id)``. Raises NotFoundError."""
        check_page(limit, after, before)
        with self.tables.lock:
            cursor = after or before
            key = None
            if cursor is not None:
                row = self._run(cursor, organization_id)
                key = (row.created_at, row.id)
            runs = [r for r in self.tables.runs.values()
                    if organization_id in (None, r.organization_id) and _run_matches(r, filters)]
            page, more_before, more_after = keyset_page(
                runs, lambda r: (r.created_at, r.id), key, forward=before is None,
                limit=limit, descending=descending)
            return RecordPage(items=[_run_record(r) for r in page], more_before=more_before,
                              more_after=more_after)

    # ------------------------------------------------------------------ steps

    def read_step(self, step_id: str, *, run_id: str | None = None,
                  organization_id: str | None = None) -> StepRecord:
        """One step. Raises NotFoundError, or ConflictError when ambiguous."""
        with self.tables.lock:
            if run_id is not None:
                self._run(run_id, organization_id)
                runs = [run_id]
            else:
                runs = sorted(r.id for r in self.tables.runs.values()
                              if organization_id in (None, r.organization_id))
            found = [self.tables.steps[r][step_id] for r in runs
                     if step_id in self.tables.steps.get(r, {})][:21]
            if not found:
                raise step_not_found(step_id)
            if len(found) > 1:
                raise ambiguous_step(step_id, [s.run_id for s in found])
            return self._step_record(found[0])

    def page_steps(self, run_id: str, filters: StepFilters, *,
                   organization_id: str | None = None, limit: int = 100,
                   after: str | None = None, before: str | None = None
                   ) -> RecordPage[StepRecord]:
        """One page of a run's matching steps in creation order. Raises NotFoundError."""
        check_page(limit, after, before)
        with self.tables.lock:
            self._run(run_id, organization_id)
            steps = self.tables.steps.get(run_id, {})
            cursor = after or before
            key = None
            if cursor is not None:
                if cursor not in steps:
                    raise step_cursor_not_found(cursor)
                key = steps[cursor].seq
            page, more_before, more_after = keyset_page(
                (s for s in steps.values() if _step_matches(s, filters)), lambda s: s.seq,
                key, forward=before is None, limit=limit, descending=False)
            return RecordPage(items=[self._step_record(s) for s in page],
                              more_before=more_before, more_after=more_after)

    def run_steps(self, run_id: str, *, organization_id: str | None = None
                  ) -> list[StepRecord]:
        """Every step of a run in creation order. Raises NotFoundError."""
        with self.tables.lock:
            self._run(run_id, organization_id)
            steps = sorted(self.tables.steps.get(run_id, {}).values(), key=lambda s: s.seq)
            return [self._step_record(s) for s in steps]

    def _step_record(self, step: StepRow) -> StepRecord:
        return StepRecord(
            run_id=step.run_id, step_id=step.step_id, block_id=step.block_id,
            block_type=step.block_type, label=step.label, status=step.status.value,
            scope=copy.deepcopy(step.scope), retry_count=step.retry_count,
            inputs=self._inputs(step), outputs=copy.deepcopy(step.outputs or {}),
            error=copy.deepcopy(step.error), reason=step.reason,
            artifact_id=step.artifact_id, artifact_operation=step.artifact_operation,
            model=step.model, tokens=copy.deepcopy(step.tokens), cost=copy.deepcopy(step.cost),
            trace_spans=copy.deepcopy(step.trace_spans), created_at=step.created_at,
            started_at=step.started_at, completed_at=step.completed_at,
            updated_at=step.updated_at, duration_ms=step.duration_ms)

    def _inputs(self, step: StepRow) -> dict[str, Any]:
        result: dict[str, Any] = {}
        steps = self.tables.steps.get(step.run_id, {})
        for handle, value in (step.inputs or {}).items():
            if isinstance(value, dict) and "ref" in value:
                source, source_handle = value["ref"]
                producer = steps.get(source)
                value = (producer.outputs or {}).get(source_handle) if producer else None
                if value is None:
                    continue  # the producer's output is gone (never stored)
            result[handle] = copy.deepcopy(value)
        return result

    def read_artifact(self, artifact_id: str, *, organization_id: str | None = None
                      ) -> ArtifactRecord:
        """The operation record behind a step's artifact ref. Raises NotFoundError."""
        with self.tables.lock:
            found = self.tables.artifacts.get(artifact_id)
            run = self.tables.runs.get(found.run_id) if found is not None else None
            if found is None or run is None or organization_id not in (
                    None, run.organization_id):
                raise artifact_not_found(artifact_id)  # another organization's: as unknown
            return copy.deepcopy(found)

    # ------------------------------------------------------------------ review queue

    def _entry(self, review: Review) -> ReviewEntry:
        run = self.tables.runs[review.run_id]
        step = self.tables.steps.get(review.run_id, {}).get(review.step_id)
        return ReviewEntry(
            id=review.id, run_id=review.run_id, step_id=review.step_id,
            block_id=review.block_id, status=review.status, data=copy.deepcopy(review.data),
            decision=review.decision, decision_data=copy.deepcopy(review.decision_data),
            note=review.reason, created_at=review.created_at, decided_at=review.decided_at,
            organization_id=run.organization_id, workflow_id=run.workflow_id,
            workflow_digest=run.workflow_digest, run_status=run.status.value,
            run_completed_at=run.completed_at, definition=copy.deepcopy(run.definition),
            block_type=step.block_type if step is not None else None)

    def _entries(self, organization_id: str | None) -> list[ReviewEntry]:
        return [self._entry(r) for r in self.tables.reviews.values()
                if organization_id in (None, self.tables.runs[r.run_id].organization_id)]

    def read_review_entry(self, review_id: str, *, organization_id: str | None = None
                          ) -> ReviewEntry:
        """One review of the queue. Raises NotFoundError."""
        with self.tables.lock:
            review = self.tables.reviews.get(review_id)
            if review is None or organization_id not in (
                    None, self.tables.runs[review.run_id].organization_id):
                raise review_entry_not_found(review_id)
            return self._entry(review)

    def page_review_entries(self, filters: ReviewFilters, *,
                            organization_id: str | None = None, limit: int = 50,
                            after: str | None = None, before: str | None = None,
                            descending: bool = False) -> RecordPage[ReviewEntry]:
        """One page of the review queue by ``(created_at, id)``. Raises NotFoundError."""
        check_page(limit, after, before)
        with self.tables.lock:
            cursor = after or before
            key = None
            if cursor is not None:
                entry = self.read_review_entry(cursor, organization_id=organization_id)
                key = (entry.created_at, entry.id)
            wanted = [e for e in self._entries(organization_id)
                      if _decision_matches(filters.decision_status, e) and all(
                          getattr(filters, c) in (None, getattr(e, c))
                          for c in ("workflow_id", "run_id", "block_id", "step_id"))]
            page, more_before, more_after = keyset_page(
                wanted, lambda e: (e.created_at, e.id), key, forward=before is None,
                limit=limit, descending=descending)
            return RecordPage(items=page, more_before=more_before, more_after=more_after)


def _run_record(run: RunRow) -> RunRecord:
    return RunRecord(
        id=run.id, workflow_id=run.workflow_id, workflow_name=run.workflow_name,
        workflow_digest=run.workflow_digest, inputs=copy.deepcopy(run.inputs),
        metadata=copy.deepcopy(run.metadata), organization_id=run.organization_id,
        trigger=run.trigger, status=run.status.value, failing_step_id=run.failing_step_id,
        error=copy.deepcopy(run.error), reason=run.reason,
        waiting_for=copy.deepcopy(run.waiting_for), outputs=copy.deepcopy(run.outputs),
        parent_run_id=run.parent_run_id, owner_pid=run.owner_pid,
        heartbeat_at=run.heartbeat_at, created_at=run.created_at, started_at=run.started_at,
        completed_at=run.completed_at)
